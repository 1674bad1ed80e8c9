"""Offline tools that work on simulator output (trace exporters, ...)."""
