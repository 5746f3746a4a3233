"""The platform's SQL migrations (``NNNN_name.sql``)."""
