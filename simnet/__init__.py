"""A deterministic discrete-event network that drives the real protocol engines."""
