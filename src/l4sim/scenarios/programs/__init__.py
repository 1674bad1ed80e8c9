"""Native programs the built-in scenarios start."""
