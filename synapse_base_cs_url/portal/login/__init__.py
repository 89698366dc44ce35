"""``POST /login`` through the portal: read the body, decide the homeserver and the mode,
then redirect (307) or proxy. A :class:`~.attempt.LoginAttempt` carries one login from its
arrival to its log line."""
