"""Run several Synapse homeservers in ONE Python process, as Synapse's own test suite does.

    python -m tests.harness.multi_homeserver CONFIG [CONFIG ...]

Each homeserver is built from its own homeserver.yaml, its modules are instantiated the way
Synapse's ``tests/unittest.py`` does it, and it listens on its own port. Once all listen, one
JSON line is printed: ``{"ready": true, "login_hook_wrappers": N}`` where N counts how many
times ``LoginRestServlet.on_POST`` has been wrapped (it must be 1, however many modules).
"""

from __future__ import annotations

import json
import logging
import sys

from synapse.config.homeserver import HomeServerConfig
from twisted.internet import reactor


def build(config_path: str) -> object:
    from synapse.app.homeserver import SynapseHomeServer

    config = HomeServerConfig.load_config("multi-homeserver", ["-c", config_path])
    hs = SynapseHomeServer(config.server.server_name, config=config)
    hs.setup()
    api = hs.get_module_api()
    for module, module_config in config.modules.loaded_modules:
        module(module_config, api)
    return hs


def wrapper_depth() -> int:
    from synapse.rest.client.login import LoginRestServlet

    depth, fn = 0, LoginRestServlet.on_POST
    while hasattr(fn, "__synapse_base_cs_url_original__"):
        depth, fn = depth + 1, fn.__synapse_base_cs_url_original__
    return depth


def main(config_paths: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    homeservers = [build(path) for path in config_paths]
    for hs in homeservers:
        hs.start_listening()  # type: ignore[attr-defined]
    print(json.dumps({"ready": True, "login_hook_wrappers": wrapper_depth()}), flush=True)
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main(sys.argv[1:])
