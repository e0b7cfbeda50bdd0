"""Sandboxes: lifecycle service and isolation drivers."""
