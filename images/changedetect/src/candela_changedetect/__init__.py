"""candela_changedetect."""
