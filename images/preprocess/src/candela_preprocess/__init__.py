"""candela_preprocess."""
