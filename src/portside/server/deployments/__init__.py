"""Symbiont-style agents (definitions, DSL) and their deployments as long-lived sandboxed processes."""
