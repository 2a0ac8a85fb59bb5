"""What a search records: the results-table row schema (``schema``), the table itself (``results``) and the
MLflow runs (``tracking``)."""
