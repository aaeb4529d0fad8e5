"""A DataFlow adapter for DuckDB, an embedded analytical database."""
