"""Bounds shared by list routes: pagination values no store can be asked for."""

from __future__ import annotations

#: Largest ``offset`` a list route accepts (beyond any table; keeps values inside 32-bit SQL integers).
MAX_OFFSET = 2**31 - 1
#: Largest ``page`` number of page-numbered lists.
MAX_PAGE = 10_000_000
