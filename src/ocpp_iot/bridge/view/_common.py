"""Frame handlers both OCPP versions share: BootNotification and the Authorize answer.

Handlers take (station state, payload, now, message id) for CALLs from the station and
(station state, payload, context saved with the CALL or None, now) for the answers; they change
the record through its methods, which mark it changed only when a value really changes.
"""

from __future__ import annotations

from typing import Any

from ._fields import _dict, _str
from ._record import _Station


def _boot(st: _Station, p: dict[str, Any], now: float, mid: str) -> None:
    if st.version == "1.6":  # 1.6 BootNotification.req
        vendor = _str(p.get("chargePointVendor"))
        model = _str(p.get("chargePointModel"))
        serial = _str(p.get("chargePointSerialNumber"))
        firmware = _str(p.get("firmwareVersion"))
        reason = None
    else:  # 2.x BootNotificationRequest: chargingStation + reason
        station = _dict(p.get("chargingStation"))
        vendor = _str(station.get("vendorName"))
        model = _str(station.get("model"))
        serial = _str(station.get("serialNumber"))
        firmware = _str(station.get("firmwareVersion"))
        reason = _str(p.get("reason"))
    st.vendor, st.model, st.serial, st.firmware = vendor, model, serial, firmware
    st.boot_reason, st.boot_status, st.boot_at = reason, None, now
    st.dirty = True
    st.expect(mid, ("BootNotification",))


def _boot_answer(st: _Station, p: dict[str, Any], ctx: tuple[Any, ...] | None, now: float) -> None:
    status = _str(p.get("status"))  # Accepted / Pending / Rejected
    if status is not None and status != st.boot_status:
        st.boot_status = status
        if st.boot_at is None:  # the request was not seen (bridge restart)
            st.boot_at = now
        st.dirty = True


def _authorize_answer(
    st: _Station, p: dict[str, Any], ctx: tuple[Any, ...] | None, now: float
) -> None:
    if ctx is None or len(ctx) < 2:
        return
    # 2.x idTokenInfo.status, 1.6 idTagInfo.status: "Accepted" means authorized.
    info = _dict(p.get("idTokenInfo" if st.version != "1.6" else "idTagInfo"))
    status = info.get("status")
    if type(status) is str:
        st.remember_token(ctx[1], status == "Accepted")
