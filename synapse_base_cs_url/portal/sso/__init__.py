"""Single sign-on through the portal: the signed callback that learns which homeserver
issued each login token, and the store that remembers it until the token login."""
