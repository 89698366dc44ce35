"""The portal's route table: which handler serves which method on which path.

A path no route matches is 404 ``M_UNRECOGNIZED`` (with a pointer to the login response's
``well_known``); a path that some route matches, asked with a method none of them accepts,
is 405, as Synapse answers. Both are derived from the one table, so a new endpoint cannot be
served without being known to the 404/405 logic too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any

import attr

from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.web.request import PortalRequest

Handler = Callable[[PortalRequest, "re.Match[bytes]"], "Coroutine[Any, Any, None] | None"]
"""Answers a request: at once (returns ``None``), or later (returns a coroutine, which the
site runs and whose errors it answers)."""

READ = (b"GET", b"HEAD")
ANY_METHOD = (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH")


@attr.s(auto_attribs=True, frozen=True, slots=True)
class Endpoint:
    """``methods`` of ``path`` (a regex matched against the whole path) go to ``handler``."""

    path: re.Pattern[bytes]
    methods: frozenset[bytes]
    handler: Handler

    @classmethod
    def of(
        cls, path: bytes | re.Pattern[bytes], methods: Iterable[bytes], handler: Handler
    ) -> Endpoint:
        pattern = path if isinstance(path, re.Pattern) else re.compile(re.escape(path))
        return cls(pattern, frozenset(methods), handler)


class UrlTable:
    """Routes tried in order; the first whose path and method both match serves."""

    def __init__(self, routes: Sequence[Endpoint], fallback: Endpoint | None = None) -> None:
        self._routes = tuple(routes)
        self._fallback = fallback

    def knows(self, path: bytes) -> bool:
        """Whether one of the portal's own routes serves ``path`` (for some method)."""
        return any(route.path.fullmatch(path) for route in self._routes)

    def falls_back(self, method: bytes, path: bytes) -> bool:
        """Whether a request goes to the fallback route (the client-server gateway)."""
        fallback = self._fallback
        return (
            fallback is not None
            and method in fallback.methods
            and fallback.path.fullmatch(path) is not None
            and not self.knows(path)
        )

    def find(self, method: bytes, path: bytes) -> tuple[Handler, re.Match[bytes]]:
        """The handler for ``method`` on ``path``; a :class:`MatrixError` 404 or 405 if none.
        The fallback route, if any, takes what no other route knows."""
        path_known = False
        for route in self._routes:
            match = route.path.fullmatch(path)
            if match is None:
                continue
            if method in route.methods:
                return route.handler, match
            path_known = True
        if path_known:
            raise errors.method_not_allowed(
                method.decode("ascii", "replace"), path.decode("utf-8", "replace")
            )
        fallback = self._fallback
        if fallback is not None and method in fallback.methods:
            match = fallback.path.fullmatch(path)
            if match is not None:
                return fallback.handler, match
        raise errors.not_here(path.decode("utf-8", "replace"))

    def __len__(self) -> int:
        return len(self._routes)
