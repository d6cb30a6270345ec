"""skyedge.edge: the on-site runtime for the Jetson. Never imports torch."""
