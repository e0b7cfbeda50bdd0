# Generated from portside/_async by scripts/unasync.py. Do not edit.
"""The sync SDK. ``portside/_sync`` is generated from this package by ``scripts/unasync.py``."""
