"""Retention: how long finished and deleted things are kept, and the purge that removes them."""
