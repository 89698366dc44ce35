"""The client-server gateway (``client_api: proxy``): every client-server API request the
portal does not answer itself goes to the user's homeserver (``destination.py``), found by
access token (learnt when a login passes through, else asked of the homeservers), by
registration (placed once), refresh token, media server name or user id in the path, else
the default homeserver. Bodies stream both ways (``exchange.py``, ``upload_stream.py``,
``relay.py``); ``auth_request.py`` answers nginx's ``auth_request``."""
