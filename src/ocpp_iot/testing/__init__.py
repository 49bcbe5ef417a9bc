"""Helpers for testing and trying ocpp-iot against a real broker (see :class:`Mosquitto`)."""

from __future__ import annotations

from .mosquitto import (
    ACL_TEMPLATE,
    Mosquitto,
    MosquittoNotFound,
    find_mosquitto,
    free_port,
    hash_password,
    passwd_line,
    render_acl,
)

__all__ = [
    "ACL_TEMPLATE",
    "Mosquitto",
    "MosquittoNotFound",
    "find_mosquitto",
    "free_port",
    "hash_password",
    "passwd_line",
    "render_acl",
]
