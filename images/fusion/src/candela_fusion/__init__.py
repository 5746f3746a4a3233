"""Candela fusion service: land cover from Sentinel-1 radar and Sentinel-2 optical data."""

from __future__ import annotations

__version__ = "0.1.0"
