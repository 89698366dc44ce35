"""Pools: spread logins over several equivalent targets.

``hash`` (the default) uses rendezvous hashing so each user keeps landing on the same member,
and adding or removing one of N members only moves about 1/N of users. ``round_robin`` spreads
load per login with no stickiness.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import threading
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

import attr

from synapse_base_cs_url.core.context import LoginContext

T = TypeVar("T")


class Strategy(str, enum.Enum):
    """How a pool picks a member; the value is the spelling used in config."""

    HASH = "hash"
    ROUND_ROBIN = "round_robin"


STRATEGY_NAMES: tuple[str, ...] = tuple(s.value for s in Strategy)


def _encode(text: str) -> bytes:
    # surrogatepass: JSON may carry lone surrogates; routing must not crash on them.
    return text.encode("utf-8", "surrogatepass")


def rendezvous_score(member: str, key: str) -> bytes:
    """Stable 64-bit score of ``member`` for ``key``; compare as bytes (big-endian).

    Uses blake2b rather than ``hash()``, which is salted per process: every Synapse worker
    and the portal must agree on a user's member.
    """
    return hashlib.blake2b(_encode(member) + b"\0" + _encode(key), digest_size=8).digest()


def rendezvous_pick(members: Iterable[T], key: str) -> T:
    """The member with the highest score for ``key`` (ties go to the earliest member).

    Members are scored by ``str(member)``, so that must be stable and distinct.
    """
    it = iter(members)
    try:
        best = next(it)
    except StopIteration:
        raise ValueError("cannot pick from an empty pool") from None
    best_score = rendezvous_score(str(best), key)
    for member in it:
        member_score = rendezvous_score(str(member), key)
        if member_score > best_score:
            best, best_score = member, member_score
    return best


def _check_members(instance: object, attribute: object, members: tuple[object, ...]) -> None:
    if not members:
        raise ValueError("a pool needs at least one member")
    if len({str(m) for m in members}) != len(members):
        raise ValueError(f"pool members must be distinct: {members!r}")


@attr.s(auto_attribs=True, frozen=True, slots=True)
class Pool(Generic[T]):
    """An ordered, non-empty tuple of distinct members and how to pick one per login."""

    members: tuple[T, ...] = attr.ib(validator=_check_members)
    strategy: Strategy = Strategy.HASH
    # Per pool, not global: two pools must not skew each other's rotation.
    _counter: itertools.count[int] = attr.ib(
        factory=itertools.count, init=False, eq=False, repr=False
    )
    _lock: threading.Lock = attr.ib(factory=threading.Lock, init=False, eq=False, repr=False)
    # blake2b states that have already hashed ``str(member) + "\0"``, for rendezvous_pick.
    _prefixes: tuple[Any, ...] = attr.ib(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        prefixes = tuple(
            hashlib.blake2b(_encode(str(m)) + b"\0", digest_size=8) for m in self.members
        )
        object.__setattr__(self, "_prefixes", prefixes)

    def pick(self, ctx: LoginContext) -> T:
        """Choose the member for this login.

        A hash pool with nothing to key on (no user id, localpart, address or IP) falls back
        to round robin rather than sending every such login to one member.
        """
        return self.members[self.pick_index(ctx)]

    def pick_index(self, ctx: LoginContext) -> int:
        """The index in ``members`` of :meth:`pick`'s choice."""
        if self.strategy is Strategy.HASH:
            key = ctx.routing_key
            if key is not None:
                return self._best_index(key)
        return self._next_index()

    def _best_index(self, key: str) -> int:
        """:func:`rendezvous_pick` on precomputed member states: the same member, for less."""
        encoded = _encode(key)
        best, best_score = 0, b""
        for index, prefix in enumerate(self._prefixes):
            state = prefix.copy()
            state.update(encoded)
            score = state.digest()
            if score > best_score:
                best, best_score = index, score
        return best

    def _next_index(self) -> int:
        # next() on a count is atomic under the GIL, but not promised without one.
        with self._lock:
            n = next(self._counter)
        return n % len(self.members)
