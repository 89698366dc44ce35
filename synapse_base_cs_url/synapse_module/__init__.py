"""The Synapse module: ``base_cs_url`` and ``well_known`` on every successful login.

``module`` is the glue Synapse loads (``synapse_base_cs_url.BaseCsUrlModule`` re-exports
it); ``config`` parses its ``config:`` block; ``selection`` and ``compute`` choose each
login's URL with the core's rules; ``metrics`` counts; ``_synapse_internals`` holds every
private Synapse name the module relies on, checked at startup.
"""
