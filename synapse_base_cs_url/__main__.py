"""``python -m synapse_base_cs_url``: the same as the ``synapse-base-cs-url`` command."""

from synapse_base_cs_url.cli import main

main()
