"""Transports that carry OCPP frames: MQTT (:mod:`.mqtt`)."""
