"""candela_search."""
