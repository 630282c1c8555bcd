"""scorer service."""
