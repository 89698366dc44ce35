"""An operator's own function, named in a config file as ``package.module:function``.

Resolved once at startup (the module's ``compute``, the portal directory's ``function``), so
that a typo in the dotted path stops the server with a clear message instead of silently
routing everyone to the fallback.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

OperatorFunction = Callable[..., object]
"""Returns what its caller documents, or an awaitable of it; validated by the caller."""


def _import_module(name: str, path: str) -> Any:
    try:
        return importlib.import_module(name)
    except Exception as e:  # a user's module can raise anything at import
        raise ValueError(
            f"cannot import module {name!r} of {path!r}: {type(e).__name__}: {e}"
        ) from None


def resolve(path: object, kwargs: Sequence[str], example: str) -> OperatorFunction:
    """Import ``package.module:function`` (or ``package.module.function``) and return it.

    Raises ``ValueError`` saying what is wrong (with ``example`` of a good path): not a
    string, not importable, missing attribute, not callable, or not callable with the
    keyword arguments ``kwargs``.
    """
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
            signature.bind(**dict.fromkeys(kwargs))
        except TypeError as e:
            raise ValueError(
                f"{path!r} cannot be called with the keyword arguments {', '.join(kwargs)}: {e}"
            ) from None
    function: OperatorFunction = obj
    return function


async def call(function: OperatorFunction, **kwargs: object) -> object:
    """Call ``function``; await its result if it is awaitable (a coroutine, or a Twisted
    Deferred). Returns what it returned, unvalidated; exceptions propagate."""
    result: object = function(**kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result
