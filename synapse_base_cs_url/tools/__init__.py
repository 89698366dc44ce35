"""Operator tools: ``explain`` (where a login goes, and why), ``diff`` (who moves when a
config changes) and ``check`` (is a live deployment wired right).

``explain`` and ``diff`` load a ``homeserver.yaml`` or a ``portal.yaml`` with the same
parsers as the module and the portal, and route with the same core; ``check`` talks to a
deployment over HTTP(S) with the standard library only.
"""
