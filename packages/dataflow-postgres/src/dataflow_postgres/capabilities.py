"""What the PostgreSQL adapter can do (read by the contract kit)."""

from dataflow.capabilities import Capabilities


class PostgresCapabilities(Capabilities):
    name = "postgresql"
    transactions = True
    savepoints = True
    returning = True
    regex = True  # POSIX ~ and ~*
    unicode_ilike = True  # ILIKE folds case by the database's locale (UTF-8)
    decimal_ordering = True  # NUMERIC compares numerically and stays exact
    concurrent_writers = True  # MVCC, row-level locks
    drop_column = True
    alter_column_type = True  # ALTER COLUMN ... TYPE ... USING
    schema_discovery = True
    transactional_ddl = True  # CREATE/ALTER roll back with their transaction
    nul_in_text = False  # TEXT and JSONB refuse U+0000; the adapter raises UnsupportedError
