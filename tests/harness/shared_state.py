"""The shared state as a dict, for unit tests of what keeps records in it (what Redis does
with these commands, without expiry: the TTL given is kept to be looked at)."""

from __future__ import annotations


class SharedDict:
    def __init__(self) -> None:
        self.values: dict[str, tuple[str, int]] = {}

    async def get(self, key: str) -> str | None:
        found = self.values.get(key)
        return None if found is None else found[0]

    async def put(self, key: str, value: str, ttl_seconds: int) -> None:
        self.values[key] = (value, ttl_seconds)

    async def put_new(self, key: str, value: str, ttl_seconds: int) -> bool:
        if key in self.values:
            return False
        self.values[key] = (value, ttl_seconds)
        return True
