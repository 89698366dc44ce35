"""Modules (and ``compute`` functions) the tests load into their real Synapse processes, by
name (``tests.in_synapse.<file>.<name>``): one place for everything that runs inside a test
Synapse rather than in the test itself."""
