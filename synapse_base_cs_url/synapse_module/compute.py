"""The ``compute`` hook: an admin-supplied function that picks a login's base URL.

Pure (no Synapse imports). Resolved once at startup, so that a typo in the dotted path stops
Synapse with a clear message instead of silently routing every login to the fallback.
"""

from __future__ import annotations

import attr

from synapse_base_cs_url.core import LoginContext, dotted_path
from synapse_base_cs_url.core.dotted_path import OperatorFunction

#: The keyword arguments a compute function is called with, in documentation order.
COMPUTE_KWARGS = ("user_id", "login_type", "client_ip", "device_id")

#: Returns a URL string or None, or an awaitable of one; validated by the caller.
ComputeFunction = OperatorFunction


def resolve(path: object) -> ComputeFunction:
    """Import the ``compute`` function ``path``; ``ValueError`` saying what is wrong."""
    return dotted_path.resolve(path, COMPUTE_KWARGS, "'mypackage.routing:choose_base_url'")


@attr.s(auto_attribs=True, frozen=True, slots=True)
class ComputeHook:
    """A resolved compute function and the path it was configured as (for logs)."""

    path: str
    function: ComputeFunction = attr.ib(eq=False, repr=False)

    @classmethod
    def from_path(cls, path: object) -> ComputeHook:
        function = resolve(path)
        assert isinstance(path, str)  # resolve() checked
        return cls(path=path, function=function)

    async def __call__(self, ctx: LoginContext) -> object:
        """Call the function for ``ctx``; await its result if it is awaitable.

        Returns whatever the function returned, unvalidated; exceptions propagate.
        """
        return await dotted_path.call(
            self.function,
            user_id=ctx.user_id,
            login_type=ctx.login_type,
            client_ip=ctx.client_ip,
            device_id=ctx.device_id,
        )
