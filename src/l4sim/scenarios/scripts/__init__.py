"""Startup scripts of the built-in scenarios (read by ned, not imported)."""
