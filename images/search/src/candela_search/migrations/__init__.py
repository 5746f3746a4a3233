"""The search service's SQL migrations (``NNNN_name.sql``), applied by the platform's ``migrate``
through the entry point group ``candela.migrations``."""
