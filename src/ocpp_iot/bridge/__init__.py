"""The ``bridge`` service: OCPP stations on MQTT, answered by ChargeSystem behaviours.

See ``docs/bridge.md``. :class:`~.service.Bridge` is one worker; :mod:`.cli` is the ``bridge``
command (``serve``, ``call``, ``demo``, ``add-station``); :mod:`.store` holds what workers share.
"""
