"""alerts service."""
