"""A DataFlow adapter for MyDB."""
