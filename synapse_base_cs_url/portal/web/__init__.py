"""The portal's HTTP layer: the route table (which derives 404 from 405), the request and
site classes, and the helpers every handler answers with (CORS, JSON, client address)."""
