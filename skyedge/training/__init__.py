"""skyedge.training: simulators, data sets and PyTorch models (workstation; torch allowed)."""
