"""What the PostgreSQL adapter can do (read by the contract kit)."""

from dataflow.capabilities import Capabilities


class PostgresCapabilities(Capabilities):
    name = "postgresql"
    transactions = True
    savepoints = True
    # an error aborts the whole transaction ("current transaction is aborted"): DataFlow
    # runs each statement of a user's transaction under its own savepoint
    statement_rollback = False
    returning = True
    regex = True  # POSIX ~ and ~*
    unicode_ilike = True  # ILIKE folds case by the database's locale (UTF-8)
    decimal_ordering = True  # NUMERIC compares numerically and stays exact
    concurrent_writers = True  # MVCC, row-level locks
    row_locks = True  # SELECT ... FOR UPDATE (READ COMMITTED: re-reads the latest version)
    drop_column = True
    alter_column_type = True  # ALTER COLUMN ... TYPE ... USING
    alter_add_foreign_key = True  # ALTER TABLE ... ADD CONSTRAINT ... FOREIGN KEY
    schema_discovery = True
    fk_cascade = True  # ON DELETE CASCADE
    fk_set_null = True  # ON DELETE SET NULL
    fk_restrict = True  # ON DELETE RESTRICT, and missing parents refused
    update_referenced_parent = True
    transactional_ddl = True  # CREATE/ALTER roll back with their transaction
    json_contains = True  # @>
    nul_in_text = False  # TEXT and JSONB refuse U+0000; the adapter raises UnsupportedError
