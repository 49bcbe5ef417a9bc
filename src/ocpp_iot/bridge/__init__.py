"""The ``bridge`` service: OCPP stations on MQTT, answered by ChargeSystem behaviours.

See ``docs/bridge.md`` (operating it) and ``docs/architecture.md`` (how it is built).
:class:`~.service.Bridge` is one worker, split by job: :mod:`.inbound` and :mod:`.answers`
(stations' CALLs: claim, answer, store, send, acknowledge), :mod:`.outbound` (CALLs to
stations), :mod:`.mirror` and :mod:`.view` (what operators see), :mod:`.backend` (what answers:
the hosted behaviours), :mod:`.store` (what workers share, behind an asynchronous facade),
:mod:`.reference` (the built-in reference charge system). The ``bridge`` command is :mod:`.cli`
(``serve``, ``call``, ``demo``, ``add-station``), with :mod:`.settings` (options from the
command line, the environment and a TOML file), :mod:`.supervisor` (``--workers``) and
:mod:`.callcmd` (``bridge call``).
"""
