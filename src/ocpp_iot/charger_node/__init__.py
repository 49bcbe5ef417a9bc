"""The charger side of ocpp-iot (runtime, simulated EVSE, durable outbox): not built yet."""
