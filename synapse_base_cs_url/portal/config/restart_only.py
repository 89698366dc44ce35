"""Settings that only a restart changes: what is built once per process from the config
(its listening sockets, its state backend, the sizes of its in-memory stores) records the
settings it was built from, field by field with their config key, so that a reload can say
exactly which of its changes wait for the next restart. One mechanism, derived from what is
built, instead of a list of names to keep in step with it."""

from __future__ import annotations

from typing import Any

import attr

_KEY = "config_key"


def config_key(key: str) -> dict[str, str]:
    """The metadata of an attrs field (``attr.ib(metadata=config_key("sso.token_ttl"))``)
    that holds the value of the config key ``key``."""
    return {_KEY: key}


def changed(built: Any, wanted: Any) -> list[str]:
    """The config keys whose values differ between two records of one attrs class made of
    :func:`config_key` fields."""
    return [
        field.metadata[_KEY]
        for field in attr.fields(type(built))
        if getattr(built, field.name) != getattr(wanted, field.name)
    ]
