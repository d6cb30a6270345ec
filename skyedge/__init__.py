"""skyedge: the small shared core (CLI entry, config loading, model card, payload schemas).

Nothing here imports torch, numpy-heavy stacks or an inference runtime at import
time: the edge package on a Jetson depends on this core.
"""

__version__ = "0.1.0"
