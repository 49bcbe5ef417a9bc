"""Transports that carry OCPP frames: MQTT (:mod:`.mqtt`, :mod:`.aio`, :mod:`.blocking`), an
in-memory broker for tests (:mod:`.memory`), the station-level link the charger node runs on
(:mod:`.link`, with :mod:`.mqtt_link` and :mod:`.memory_link`), and the sans-IO LoRa link layer
(:mod:`.lora`: time on air, duty cycle, authenticated frames, fragments, acknowledgements).
See docs/transports.md and docs/lora.md."""
