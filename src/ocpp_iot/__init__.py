"""ocpp-iot: OCPP as typed Python models, compact CBOR, and transports for MQTT and LoRa."""

from __future__ import annotations

from .rpc import VERSIONS, Call, CallError, CallResult, CallResultError, Frame, MessageType, Send

__version__ = "0.1.0"

__all__ = [
    "VERSIONS",
    "Call",
    "CallError",
    "CallResult",
    "CallResultError",
    "Frame",
    "MessageType",
    "Send",
    "__version__",
]
