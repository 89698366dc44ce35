"""Development helpers, not a public API: the demos and the throwaway Synapse and portal
processes they start on loopback (the tests and benchmarks reuse these)."""
