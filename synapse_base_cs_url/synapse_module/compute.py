"""The ``compute`` hook: an admin-supplied function that picks a login's base URL.

Pure (no Synapse imports). Resolved once at startup, so that a typo in the dotted path stops
Synapse with a clear message instead of silently routing every login to the fallback.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

import attr

from synapse_base_cs_url.core import LoginContext

#: The keyword arguments a compute function is called with, in documentation order.
COMPUTE_KWARGS = ("user_id", "login_type", "client_ip", "device_id")

#: Returns a URL string or None, or an awaitable of one; validated by the caller.
ComputeFunction = Callable[..., object]


def _import_module(name: str, path: str) -> Any:
    try:
        return importlib.import_module(name)
    except Exception as e:  # a user's module can raise anything at import
        raise ValueError(
            f"cannot import module {name!r} of {path!r}: {type(e).__name__}: {e}"
        ) from None


def resolve(path: object) -> ComputeFunction:
    """Import ``package.module:function`` (or ``package.module.function``) and return it.

    Raises ``ValueError`` saying what is wrong: not a string, not importable, missing
    attribute, not callable, or not callable with the keyword arguments we pass.
    """
    example = "'mypackage.routing:choose_base_url'"
    if not isinstance(path, str) or not path.strip():
        shown = "an empty string" if isinstance(path, str) else type(path).__name__
        raise ValueError(f"must be a dotted path such as {example}, not {shown}")
    if path.count(":") > 1:
        raise ValueError(f"{path!r} has more than one ':'; use {example}")
    if ":" in path:
        module_name, _, attr_path = path.partition(":")
    else:
        module_name, _, attr_path = path.rpartition(".")
    names = attr_path.split(".") if attr_path else []
    if not module_name or not names or not all(n.isidentifier() for n in names):
        raise ValueError(f"{path!r} is not a dotted path to a function; use {example}")

    obj = _import_module(module_name, path)
    for name in names:
        try:
            obj = getattr(obj, name)
        except AttributeError:
            raise ValueError(
                f"{path!r}: {type(obj).__name__} {getattr(obj, '__name__', '?')!r} "
                f"has no attribute {name!r}"
            ) from None
    if not callable(obj):
        raise ValueError(f"{path!r} is not callable (it is a {type(obj).__name__})")
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):  # some builtins cannot be introspected; try at call time
        signature = None
    if signature is not None:
        try:
            signature.bind(**dict.fromkeys(COMPUTE_KWARGS))
        except TypeError as e:
            raise ValueError(
                f"{path!r} cannot be called with the keyword arguments "
                f"{', '.join(COMPUTE_KWARGS)}: {e}"
            ) from None
    function: ComputeFunction = obj
    return function


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
        result: object = self.function(
            user_id=ctx.user_id,
            login_type=ctx.login_type,
            client_ip=ctx.client_ip,
            device_id=ctx.device_id,
        )
        if inspect.isawaitable(result):  # coroutine, or a Twisted Deferred
            result = await result
        return result
