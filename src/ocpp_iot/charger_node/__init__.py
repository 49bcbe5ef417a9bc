"""The charger side of ocpp-iot: what runs on a Raspberry Pi in or beside a charger.

- :class:`StationMachine` (:mod:`.station`): one station's OCPP logic, sans-IO: boot, status,
  heartbeat, authorization, transactions, what the back end may ask; frames and time in, frames
  out, on :class:`~ocpp_iot.rpc.Session` and the durable :class:`Outbox`;
- :class:`StationRuntime` (:mod:`.runtime`): the asyncio shell around it over any
  :class:`~ocpp_iot.transports.link.StationLink`;
- :class:`Node` and :class:`NodeConfig` (:mod:`.node`): a station's parts from its configuration
  (``charger-node run``); :mod:`.simulate` runs many (``charger-node simulate``);
- the hardware seam :class:`Evse` (:mod:`.evse`) with a seeded :class:`SimulatedEvse` and
  scenario files (:mod:`.scenario`); the persisted :class:`DeviceModel`.

See docs/charger-node.md.
"""

from .device_model import DeviceModel, JsonFileStore
from .evse import Evse, MeterReading
from .node import Node, NodeConfig
from .outbox import Outbox, ReplayPace, RetryPolicy
from .runtime import StationRuntime
from .simulated import SimulatedEvse
from .station import BootInfo, StationMachine

__all__ = [
    "BootInfo",
    "DeviceModel",
    "Evse",
    "JsonFileStore",
    "MeterReading",
    "Node",
    "NodeConfig",
    "Outbox",
    "ReplayPace",
    "RetryPolicy",
    "SimulatedEvse",
    "StationMachine",
    "StationRuntime",
]
