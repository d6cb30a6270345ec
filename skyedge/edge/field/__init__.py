"""Telescope fields: tracker, difference imaging, step-graph state, the field task and what it publishes."""
