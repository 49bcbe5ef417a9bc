"""Transports that carry OCPP frames: MQTT (:mod:`.mqtt`, :mod:`.aio`, :mod:`.blocking`),
and an in-memory broker for tests (:mod:`.memory`). See docs/transports.md."""
