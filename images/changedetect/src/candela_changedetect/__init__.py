"""Candela change detection: change probability and change mask from two co-registered stacks."""

from __future__ import annotations

__version__ = "0.1.0"
