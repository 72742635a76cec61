"""What a book operation reports (:class:`BookVerdict`).

A module of its own because it defines a msgspec Struct: it stays interpreted when the book is
compiled (``setup.py``), since a compiled class body does not pass on the Struct's class
keywords (``frozen=True`` would be lost).
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["BookVerdict", "VerdictAction"]

VerdictAction = Literal["ok", "invalidated", "resynced"]


class BookVerdict(msgspec.Struct, frozen=True):
    """What the caller should do after a book operation.

    ``"invalidated"``: emit ``BookInvalidated(asset_id, reason)`` and schedule a resync.
    ``"resynced"``: emit ``BookResynced(asset_id, source=reason)`` (``"snapshot"`` or ``"rest"``).
    ``"ok"``: nothing to do; ``reason`` may say why nothing happened (e.g. ``"stale resync"``).
    """

    asset_id: str
    action: VerdictAction
    reason: str = ""
