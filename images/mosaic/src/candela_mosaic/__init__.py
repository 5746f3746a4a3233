"""candela_mosaic: merge grid-aligned tiles of one product into one COG."""

__version__ = "0.1.0"
