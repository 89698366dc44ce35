"""The package's layering, checked from its source: no import cycle, and each layer imports
only what is below it (``docs/architecture.md`` draws the same picture)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "synapse_base_cs_url"
NAME = PACKAGE.name


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (at run time or for type checking alike:
    a cycle is a cycle to the reader too)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # ``from pkg import module`` imports the module; ``from module import x``
                # the module.
                targets = [
                    f"{node.module}.{a.name}"
                    if f"{node.module}.{a.name}" in modules
                    else node.module
                    for a in node.names
                ]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                if target.startswith(NAME) and target in modules and target != name:
                    found.add(target)
        graph[name] = found
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle() -> None:
    cycle = _cycle(_imports())
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def _imported_by(prefix: str) -> set[str]:
    graph = _imports()
    return {t for m, ts in graph.items() if m.startswith(prefix) for t in ts}


def test_core_needs_neither_synapse_nor_twisted() -> None:
    for path in (PACKAGE / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            for imported in names:
                assert not imported.startswith(("synapse", "twisted")) or imported.startswith(
                    NAME
                ), f"{path.name} imports {imported}"
    assert all(t.startswith(f"{NAME}.core") for t in _imported_by(f"{NAME}.core."))


def test_the_web_layer_is_at_the_bottom_of_the_portal() -> None:
    """``portal/web/`` knows HTTP, not what is served: it imports no handler."""
    allowed = (
        f"{NAME}.core",
        f"{NAME}.portal.web",
        f"{NAME}.portal.errors",
        f"{NAME}.portal.config",
        f"{NAME}.portal.metrics",
        f"{NAME}.portal.reactor",
    )
    above = {t for t in _imported_by(f"{NAME}.portal.web.") if not t.startswith(allowed)}
    assert above == set()


def _reached_from(prefix: str) -> set[str]:
    """Every module the modules under ``prefix`` import, directly or not."""
    graph = _imports()
    seen: set[str] = set()
    todo = [m for m in graph if m.startswith(prefix)]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_the_gateway_does_not_borrow_from_the_login_package() -> None:
    """Not even through another module: what the gateway shares with logins (the login
    routes, placement, header hygiene) lives outside ``login/``."""
    reached = _reached_from(f"{NAME}.portal.gateway.")
    assert {t for t in reached if t.startswith(f"{NAME}.portal.login.")} == set()


#: The modules that answer requests: none imports another (what two of them share lives
#: below them: ``web/``, the decisions, ``client_paths``).
HANDLERS = (
    f"{NAME}.portal.login.login_handler",
    f"{NAME}.portal.sso.sso_handler",
    f"{NAME}.portal.registration",
    f"{NAME}.portal.gateway.gateway",
    f"{NAME}.portal.gateway.auth_request",
    f"{NAME}.portal.discovery",
    f"{NAME}.portal.placement_asks",
    f"{NAME}.portal.identity_lookup",
)


def test_no_handler_imports_another() -> None:
    graph = _imports()
    for handler in HANDLERS:
        assert handler in graph, f"{handler} is not a module any more: update HANDLERS"
        others = {t for t in graph[handler] if t in HANDLERS}
        assert others == set(), f"{handler} imports {others}"


def test_every_client_api_path_pattern_is_in_client_paths() -> None:
    """One pattern for one endpoint: a second copy of a path drifts from the first."""
    pattern = re.compile(r"""b["']/_matrix/""")
    elsewhere = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "client_paths.py" and pattern.search(path.read_text())
    ]
    assert elsewhere == []
