"""The portal's HTTP layer, at the bottom: the URL table (which derives 404 from 405), the
request (its body in memory or handed to a ``BodySink``) with the typed helpers every handler
answers with, the channel and site (deadlines, the connection cap, draining), and the one
resource that dispatches. It knows nothing of what is served (``endpoints.py`` does)."""
