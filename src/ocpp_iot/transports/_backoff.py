"""Back-off between connection attempts, and log lines that say what went wrong and what to do.

Sans-IO: the clock and the random source are passed in, so the tests can drive both.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff", "FailureLog", "refusal_advice"]


class Backoff:
    """Exponential back-off with jitter.

    The n-th consecutive failure waits a random time in the upper half of
    ``min(max_delay, min_delay * 2**n)`` ("equal jitter"). The random half spreads clients that
    failed together (a broker restart) apart; the fixed half puts a floor under every delay, so
    the attempt rate has a hard bound: with the defaults (0.5 s, 30 s) at most six attempts fit
    in any ten seconds of failures.
    """

    def __init__(
        self,
        min_delay: float,
        max_delay: float,
        rng: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.min_delay = max(0.01, min_delay)
        self.max_delay = max(self.min_delay, max_delay)
        self._rng = rng
        self.failures = 0

    def next_delay(self) -> float:
        """The delay before the next attempt, counting one more failure."""
        ceiling = min(self.max_delay, self.min_delay * (2 ** min(self.failures, 30)))
        self.failures += 1
        return self._rng(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0


@dataclass
class _Last:
    key: str
    at: float
    suppressed: int = 0


class FailureLog:
    """Log connection failures at WARNING without flooding the log.

    A failure unlike the previous one is logged at once. The same failure again is logged at
    DEBUG only, until ``every`` seconds have passed since it was last logged at WARNING; that
    line then says how many were left out. So a wrong password retried for an hour writes
    about sixty lines, not thousands.
    """

    def __init__(
        self, logger: logging.Logger, clock: Callable[[], float], every: float = 60.0
    ) -> None:
        self._log = logger
        self._clock = clock
        self.every = every
        self._last: _Last | None = None
        self.warnings = 0  # lines written at WARNING (for tests)

    def failure(self, key: str, text: str) -> None:
        """Report one failure; ``key`` says which failures count as the same."""
        now = self._clock()
        last = self._last
        if last is not None and last.key == key and now - last.at < self.every:
            last.suppressed += 1
            self._log.debug("%s", text)
            return
        if last is not None and last.key == key and last.suppressed:
            text = f"{text} ({last.suppressed} more like this in the last {now - last.at:.0f} s)"
        self._last = _Last(key, now)
        self.warnings += 1
        self._log.warning("%s", text)

    def recovered(self) -> int:
        """Forget the failure streak (a connection succeeded); returns how long it was."""
        last, self._last = self._last, None
        return 0 if last is None else last.suppressed + 1


# CONNACK reason codes (MQTT 5 section 3.2.2.2) and MQTT 3.1.1 return codes (section 3.2.2.3)
# that have a clear remedy.
_NOT_AUTHORIZED = {135, 5}
_BAD_CREDENTIALS = {134, 4}
_BAD_CLIENT_ID = {133, 2}
_UNSUPPORTED_VERSION = {132, 1}
_UNAVAILABLE = {136, 137, 3}
_BANNED = {138}


def refusal_advice(code: int, client_id: str) -> str:
    """What to do about a CONNACK refused with ``code`` (either protocol version)."""
    if code in _NOT_AUTHORIZED or code in _BAD_CREDENTIALS:
        return "not authorized: check --username / --password (the MQTT username and password)"
    if code in _BAD_CLIENT_ID:
        return f"the broker rejects the client id {client_id!r}: choose another one"
    if code in _UNSUPPORTED_VERSION:
        return "the broker does not speak this MQTT version: try --mqtt-version 3.1.1"
    if code in _UNAVAILABLE:
        return "the broker is unavailable or busy: it may be starting or overloaded"
    if code in _BANNED:
        return "the broker has banned this client"
    return "see the broker's log for the reason"
