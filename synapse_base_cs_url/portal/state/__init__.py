"""State shared by every portal process: in memory (one process), or in Redis (any number
of processes, on any number of machines)."""
