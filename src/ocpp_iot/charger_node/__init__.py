"""The charger side of ocpp-iot: what runs on a Raspberry Pi beside a charger (issue 16).

Built so far, each tested on its own: the hardware seam (:mod:`.evse`, with a seeded simulation
in :mod:`.simulated` and scenario files in :mod:`.scenario`), the durable outbox for transaction
messages (:mod:`.outbox`), and the persisted device model (:mod:`.device_model`). The sans-IO
station machine that joins them to the :class:`~ocpp_iot.rpc.Session`, its asyncio runtime and
the ``charger-node run/status/simulate`` commands are not built yet (``charger-node`` prints
its help).
"""

from .device_model import DeviceModel, JsonFileStore
from .evse import Evse, MeterReading
from .outbox import Outbox, ReplayPace, RetryPolicy
from .simulated import SimulatedEvse

__all__ = [
    "DeviceModel",
    "Evse",
    "JsonFileStore",
    "MeterReading",
    "Outbox",
    "ReplayPace",
    "RetryPolicy",
    "SimulatedEvse",
]
