"""The account directory: which homeserver holds an existing account, for logins (and,
later, registrations) by an identifier that names no server: a bare localpart, an e-mail
address, a phone number.

- ``identifier.py``: what is looked up, canonicalised as Synapse stores it;
- ``sources.py``: who is asked (Synapse's admin API of every homeserver, an operator's HTTP
  directory, an operator's function);
- ``directory.py``: one lookup per identifier at a time, cached, rate-limited, and the
  outcome (one holder, several, none, or no answer).
"""
