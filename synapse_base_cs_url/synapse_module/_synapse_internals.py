"""Every use of a private or internal Synapse name, in one place.

Synapse has no module callback for the ``/login`` response, and ``register_web_resource``
cannot override a path under ``/_matrix/client``. So the module wraps
``LoginRestServlet.on_POST`` (and ``RegisterRestServlet.on_POST``) at class level, once per
process, and the wrapper looks up the hook registered for the servlet's own homeserver:
several homeservers can live in one process, and one without the module stays untouched.

Internal names used, all checked by ``check_compatibility`` at startup:
- ``synapse.rest.client.login.LoginRestServlet.on_POST(self, request)`` -> ``(int, dict)``
- ``synapse.rest.client.register.RegisterRestServlet.on_POST(self, request)`` -> ``(int, dict)``
- the servlets' ``self.hs`` attribute (set in their ``__init__``)
- ``ModuleApi._hs``
- ``SynapseRequest.content`` (the raw body, re-read to learn the login type)
- with ``placement``: ``HomeServer.get_datastores().main.get_user_id_by_threepid(medium,
  address)`` (who holds an address; the module API has no public way to ask),
  ``...main.get_users_by_id_case_insensitive(user_id)`` (whether a name is held; the module
  API's ``check_user_exists`` logs every miss as a failed login) and
  ``HomeServer.get_reactor()`` (to bound an ask to the portal)
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import re
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import attr
import synapse
from synapse.module_api import ModuleApi

from synapse_base_cs_url.core import JsonDict

logger = logging.getLogger(__name__)


#: Oldest Synapse we test against and support (see docs/compatibility.md for why).
OLDEST_SUPPORTED = (1, 100, 0)
#: Newest Synapse we have tested against; newer releases are accepted if the checks pass.
NEWEST_TESTED = (1, 163, 2)

LOGIN = "login"
REGISTER = "register"

#: Marks the wrapper so the hook is installed once however many modules are created.
_WRAPPED_MARKER = "__synapse_base_cs_url_original__"


class RequestFacts:
    """What the module may use of the HTTP request behind a successful login.

    Read from the request only when asked (once per login): a static ``base_cs_url`` needs
    neither, so its logins do not pay for re-parsing the body.
    """

    __slots__ = ("_request",)

    def __init__(self, request: Any) -> None:
        self._request = request

    def client_ip(self) -> str | None:
        """The client IP as Synapse records it (X-Forwarded-For on x_forwarded listeners)."""
        try:
            host: str = self._request.getClientAddress().host
        except Exception:
            return None
        return host

    def body(self) -> JsonDict | None:
        """The JSON body the client sent, or None if it cannot be re-read."""
        try:
            self._request.content.seek(0)
            # Synapse accepts only UTF-8 bodies; decoding first spares json its detection.
            parsed = json.loads(self._request.content.read().decode("utf-8"))
        except Exception:
            return None
        return parsed if isinstance(parsed, dict) else None


ResponseHook = Callable[[RequestFacts, JsonDict], JsonDict | Awaitable[JsonDict]]
"""Returns the amended response, or an awaitable of it (only when it has to wait)."""


@attr.s(auto_attribs=True, frozen=True, slots=True)
class _Registration:
    hook: ResponseHook
    # Told about every fail-open event (for metrics); must not raise.
    on_failure: Callable[[], None]


class IncompatibleSynapseError(RuntimeError):
    """Raised at startup when this Synapse does not have the shape the hook needs."""


def _version_str(version: tuple[int, ...]) -> str:
    return ".".join(str(v) for v in version)


def _parse_version(text: str) -> tuple[int, ...]:
    """``(major, minor, patch)`` of a Synapse version; a pre-release suffix is ignored.

    ``1.163.0rc1`` is ``(1, 163, 0)``: only the leading digits of each part count.
    """
    parts = []
    for piece in text.split(".")[:3]:
        digits = re.match(r"\d+", piece)
        parts.append(int(digits.group()) if digits else 0)
    return tuple(parts)


def supported_range() -> str:
    return f"{_version_str(OLDEST_SUPPORTED)} to {_version_str(NEWEST_TESTED)}"


def _servlet_classes() -> dict[str, type]:
    from synapse.rest.client.login import LoginRestServlet
    from synapse.rest.client.register import RegisterRestServlet

    return {LOGIN: LoginRestServlet, REGISTER: RegisterRestServlet}


def check_placement_compatibility(api: ModuleApi) -> None:
    """Fail startup with a clear message if ``placement`` cannot work on this Synapse."""
    problems = []
    hs = getattr(api, "_hs", None)
    store = hs.get_datastores().main if hs is not None else None
    for method, args in (
        ("get_user_id_by_threepid", "medium, address"),
        ("get_users_by_id_case_insensitive", "user_id"),
    ):
        if not inspect.iscoroutinefunction(getattr(store, method, None)):
            problems.append(f"its store has no {method}({args})")
    if not callable(getattr(hs, "get_reactor", None)):
        problems.append("HomeServer.get_reactor is missing")
    if problems:
        raise IncompatibleSynapseError(
            f"synapse-base-cs-url's placement cannot run on Synapse {synapse.__version__}: "
            f"{'; '.join(problems)}. Supported Synapse versions: {supported_range()}."
        )


async def user_id_by_threepid(api: ModuleApi, medium: str, address: str) -> str | None:
    """The local user holding ``address`` (as Synapse stores it), or ``None``."""
    store = api._hs.get_datastores().main
    user_id: str | None = await store.get_user_id_by_threepid(medium, address)
    return user_id


async def holds_user(api: ModuleApi, user_id: str) -> bool:
    """Whether an account by ``user_id`` exists here (deactivated or not, any case of it)."""
    store = api._hs.get_datastores().main
    found: dict[str, str] = await store.get_users_by_id_case_insensitive(user_id)
    return bool(found)


def reactor_of(api: ModuleApi) -> Any:
    """The homeserver's reactor (to bound a request the module makes)."""
    return api._hs.get_reactor()


def check_compatibility(api: ModuleApi) -> None:
    """Fail startup with a clear message if the hook cannot work on this Synapse."""
    version = synapse.__version__
    problems = []
    if _parse_version(version) < OLDEST_SUPPORTED:
        problems.append(f"it is older than {_version_str(OLDEST_SUPPORTED)}")
    try:
        classes = _servlet_classes()
    except ImportError as e:
        problems.append(f"cannot import the login/register servlets ({e})")
        classes = {}
    for cls in classes.values():
        on_post = inspect.getattr_static(cls, "on_POST", None)
        original = getattr(on_post, _WRAPPED_MARKER, on_post)
        where = f"{cls.__name__}.on_POST"
        if original is None:
            problems.append(f"{where} is missing")
            continue
        if not inspect.iscoroutinefunction(original):
            problems.append(f"{where} is no longer a coroutine function")
        try:
            inspect.signature(original).bind("self", "request")
        except TypeError:
            params = ", ".join(inspect.signature(original).parameters)
            problems.append(f"{where} takes ({params}), expected (self, request)")
        init = inspect.getattr_static(cls, "__init__")
        if "hs" not in getattr(getattr(init, "__code__", None), "co_names", ()):
            problems.append(f"{cls.__name__}.__init__ no longer sets self.hs")
    if not hasattr(api, "_hs"):
        problems.append("ModuleApi no longer has _hs")
    if problems:
        raise IncompatibleSynapseError(
            f"synapse-base-cs-url cannot run on Synapse {version}: {'; '.join(problems)}. "
            f"Supported Synapse versions: {supported_range()}."
        )
    if _parse_version(version) > NEWEST_TESTED:
        logger.warning(
            "synapse-base-cs-url has been tested with Synapse %s; this is Synapse %s. "
            "The startup checks passed, but please report any problem.",
            supported_range(),
            version,
        )


def homeserver_of(api: ModuleApi) -> object:
    hs: object = api._hs
    return hs


#: homeserver -> {endpoint: hook}. Weak, so that a torn-down homeserver is forgotten.
_hooks: weakref.WeakKeyDictionary[Any, dict[str, _Registration]] = weakref.WeakKeyDictionary()


def register_response_hook(
    api: ModuleApi,
    endpoint: str,
    hook: ResponseHook,
    on_failure: Callable[[], None] = lambda: None,
) -> None:
    """Call ``hook`` on every successful ``endpoint`` response of ``api``'s homeserver.

    If the hook raises, Synapse's response goes out unchanged, the error is logged with its
    traceback and ``on_failure`` is called.
    """
    _install_wrapper(_servlet_classes()[endpoint], endpoint)
    _hooks.setdefault(homeserver_of(api), {})[endpoint] = _Registration(hook, on_failure)


def _install_wrapper(cls: type, endpoint: str) -> None:
    original = cls.__dict__["on_POST"]
    if hasattr(original, _WRAPPED_MARKER):
        return

    @functools.wraps(original)
    async def on_POST(self: Any, request: Any) -> Any:
        result = await original(self, request)
        try:
            registration = _hooks.get(self.hs, {}).get(endpoint)
        except Exception:
            # No ``self.hs`` (a subclass, a servlet built some other way) or an hs that
            # cannot be weakly referenced: no hook, and the login goes out as Synapse made it.
            registration = None
        if registration is None:
            return result
        try:
            code, body = result
            if code != 200 or not isinstance(body, dict) or "access_token" not in body:
                return result
            amended = registration.hook(RequestFacts(request), body)
            if not isinstance(amended, dict):
                amended = await amended
        except Exception:
            # Fail open: the login already succeeded; never turn it into an error.
            logger.exception(
                "synapse-base-cs-url: could not add base_cs_url to a %s response; "
                "sending Synapse's response unchanged",
                endpoint,
            )
            with contextlib.suppress(Exception):
                registration.on_failure()
            return result
        return code, amended

    setattr(on_POST, _WRAPPED_MARKER, original)
    cls.on_POST = on_POST  # type: ignore[attr-defined]
