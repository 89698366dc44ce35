"""``portal.yaml``, one module per section; ``portal_config.py`` puts them together.

Every parser raises ``ValueError`` whose message starts with the path of the offending key
(``homeservers.hs2.proxy_url: ...``), so ``synapse-base-cs-url portal`` can print it and
exit without a traceback:

- ``homeservers.py``: ``homeservers`` (``Homeserver``);
- ``login.py``: ``mode``, ``routes``, ``default_homeserver``'s check, ``server_name``,
  ``proxy_user_agents``, ``discovery_cache_ttl``;
- ``sso.py``: ``sso`` and its signing keys;
- ``gateway.py``: ``client_api``, ``gateway`` and the gateway's timeouts;
- ``serving.py``: ``listen``, ``workers``, ``shutdown_grace``, ``connections``,
  ``max_body_size``, ``metrics``;
- ``state.py``: ``state`` (memory or Redis);
- ``upstream.py``: ``upstream`` and the homeserver ``timeouts``.
"""
