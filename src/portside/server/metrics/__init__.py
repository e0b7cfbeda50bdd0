"""Metrics: host and store figures as JSON (native, Symbiont) and in the Prometheus text format."""
