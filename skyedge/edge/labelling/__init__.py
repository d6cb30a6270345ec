"""Frames kept for labelling, the labelling page, and the head refit on labelled frames (adapt)."""
