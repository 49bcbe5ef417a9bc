"""A per-station summary for MQTT Explorer: the retained ``{prefix}/{id}/json/state`` payload.

:class:`StationView` is sans-IO: the bridge feeds it every frame it sees (:meth:`~StationView.
observe`), the station's MQTT status (:meth:`~StationView.status`) and its own complaints about a
station (:meth:`~StationView.error`); each call returns the bytes to publish, retained, on the
station's ``json/state`` topic, or ``None`` when nothing an operator cares about changed. The view
does no I/O and reads no clock: ``now`` is passed in, as float seconds since the Unix epoch.
``observe``, ``status``, ``error`` and ``restore`` never raise: a station that sends nonsense
must not break the bridge (``faults`` counts what only the last-resort catch stopped).

Payload (compact JSON, UTF-8, keys always present and in this order)::

    {
      "station": "CP1",
      "status": "online",               # "online" | "offline" | "unknown" (no status seen yet)
      "status_since": "2026-06-05T12:41:02Z",   # when status last changed; null while unknown
      "version": "2.0.1",               # "1.6" | "2.0.1" | "2.1"; null before the first frame
      "vendor": "Kempower",             # from the latest BootNotification (null when absent):
      "model": "S-Series",              #   1.6: chargePointVendor, chargePointModel,
      "serial": "59081935",             #        chargePointSerialNumber, firmwareVersion
      "firmware": "5.1.64",             #   2.x: chargingStation.vendorName, model, serialNumber,
                                        #        firmwareVersion
      "boot": {                         # null until a BootNotification is seen
        "reason": "PowerUp",            #   2.x reason; null in 1.6
        "status": "Accepted",           #   from the response; null while it is unanswered
        "at": "2026-06-05T12:41:02Z"    #   when the bridge saw the request
      },
      "last_seen": "2026-06-05T12:54:51Z",  # last frame from the station, or its "online"
      "connectors": {                   # from StatusNotification, sorted by number
        "1/1": {                        #   2.x "<evseId>/<connectorId>"; 1.6 "<connectorId>"
          "status": "Occupied",         #   2.x connectorStatus; 1.6 status
          "error": null,                #   1.6 errorCode unless NoError; always null in 2.x
          "since": "2026-06-05T12:53:40Z"   # when status or error last changed
        }
      },
      "transactions": {                 # transactions in progress, {} when none
        "1": {                          #   key: 2.x evseId ("?" while not yet known); 1.6
                                        #   connectorId. One transaction per EVSE/connector.
          "id": "c3baea9e-...",         #   2.x transactionId (string); 1.6 transactionId
                                        #   (integer; null until StartTransaction is answered)
          "connector": 1,               #   connectorId, null when not known
          "started": "2026-06-05T12:53:48Z",  # the station's timestamp of Started /
                                        #   StartTransaction, in UTC; null when not seen
          "authorized": true,           #   the id token was accepted (Authorize, TransactionEvent
                                        #   or StartTransaction answer); the token itself is
                                        #   personal data and is never published
          "state": "Charging",          #   2.x transactionInfo.chargingState; null in 1.6
          "energy_wh": 4686206.9,       #   latest Energy.Active.Import.Register, in Wh
          "power_w": 12007.9            #   latest Power.Active.Import, in W
        }
      },
      "last_error": {                   # null until an error is seen
        "at": "2026-06-05T13:00:00Z",
        "text": "station sent CALLERROR NotSupported for Reset: ..."
      },
      "counts": {"up": 41, "down": 40}  # frames observed since the view started
    }

Times are the bridge's clock (the ``now`` passed in), ISO 8601 in UTC to the second with ``Z``,
except ``started``, which is the station's own timestamp (a transaction may be reported long after
it began, from the station's offline queue), normalised to the same form.

Transactions come from 2.x TransactionEvent (Started and Updated add or update, Ended removes; an
Updated for a transaction not seen starting, after a bridge restart, is added with ``started``
null) and MeterValues (on the EVSE's transaction), and from 1.6 StartTransaction (its answer's
transactionId), MeterValues and StopTransaction. Meter values: the sample without a phase wins,
otherwise the sum of the L1, L2, L3 samples; kWh and kW (and 2.x unit multipliers) are converted.

When to publish: whenever a field other than ``last_seen``, ``counts``, ``energy_wh`` and
``power_w`` changes; when only meter readings changed, ``meter_refresh`` seconds (default 60)
after the last publication (a station sampling every 10 s must not republish every 10 s); and
otherwise when ``refresh`` seconds (default 300) have passed since the last publication of that
station and a new frame or status arrives, so a Heartbeat every minute does not republish the
state of every station every minute. ``status`` "online" for a station in status "unknown" also
follows from any frame the station sends (the MQTT birth message may have been missed);
"offline" only from :meth:`~StationView.status`.

After a restart, :meth:`~StationView.restore` takes the retained payload back, so the summary
does not lose what only a BootNotification tells.

Memory per station is bounded (at most 64 connectors, 16 transactions, 16 unanswered CALLs,
8 remembered token verdicts, strings cut to 64 characters, error texts to 256);
:meth:`~StationView.forget` drops a removed station.

The package, by job: ``_view`` (:class:`StationView`, the entry points), ``_record`` (the
per-station record, its JSON value, its restoration), ``_common``, ``_v2`` and ``_v16`` (what
frames change: handlers shared by both versions, OCPP 2.x and OCPP 1.6 ones), ``_meter`` (meter
values), ``_time`` (ISO 8601 text out, the station's dateTimes in), ``_fields`` (limits and
total field readers).
"""

from ._view import DEFAULT_METER_REFRESH, DEFAULT_REFRESH, StationView

__all__ = ["StationView", "DEFAULT_REFRESH", "DEFAULT_METER_REFRESH"]
