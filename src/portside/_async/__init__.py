"""The async SDK. ``portside/_sync`` is generated from this package by ``scripts/unasync.py``."""
