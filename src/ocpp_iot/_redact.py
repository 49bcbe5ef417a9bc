"""Credentials out of log lines and error messages.

A broker URL may carry ``user:password@``; anything that prints a URL or an exception that
might contain one passes it through :func:`redact` first.
"""

from __future__ import annotations

import re

__all__ = ["redact", "redact_url"]

# scheme://user:password@  ->  scheme://user:***@   (also a bare user:password@host)
_USERINFO = re.compile(r"(?P<head>(?:[a-zA-Z][a-zA-Z0-9+.-]*://)?[^\s:/@]+):(?P<pw>[^\s@/]*)@")


def redact_url(url: str) -> str:
    """``mqtt://user:secret@host`` -> ``mqtt://user:***@host``; other URLs unchanged."""
    return _USERINFO.sub(lambda m: f"{m.group('head')}:***@", url, count=1)


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with URL passwords and each of ``secrets`` (non-empty ones) replaced by ***."""
    out = _USERINFO.sub(lambda m: f"{m.group('head')}:***@", text)
    for secret in secrets:
        if secret:
            out = out.replace(secret, "***")
    return out
