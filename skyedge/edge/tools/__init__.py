"""Operator tools beside the daemon: benchmarks and the watch table. Nothing in the runtime imports them."""
