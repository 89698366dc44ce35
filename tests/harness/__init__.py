"""What the tests share: throwaway processes, fake servers, clients and constants.

Tests import from here, never from a ``conftest.py`` (which only holds fixtures).
What runs inside the test Synapses is in ``tests/in_synapse/``.
"""
