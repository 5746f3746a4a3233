"""Candela RDF ETL: sources mapped through the Candela ontology, checked by SHACL, loaded into the
knowledge base (one named graph per source and per run)."""
