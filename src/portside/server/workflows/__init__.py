"""Symbiont-style workflow execution on the flows engine."""
