"""`skyedge demo`: the whole path on one machine (an application of every stage, not part of the core)."""
