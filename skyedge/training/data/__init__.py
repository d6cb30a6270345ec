"""Data sets on disk: the sharded format the simulators write and training reads, and real-data loaders."""
