"""What the SQLite adapter can do (read by the contract kit)."""

from dataflow.capabilities import Capabilities


class SQLiteCapabilities(Capabilities):
    name = "sqlite"
    transactions = True
    savepoints = True
    statement_rollback = True  # a failed statement is undone alone (ABORT conflict resolution)
    returning = True
    regex = True  # Python's re, through a registered function
    unicode_ilike = True  # Python casefold matching, through a registered function
    decimal_ordering = False  # Decimals are stored as text to stay exact
    concurrent_writers = False  # one writer at a time
    # no FOR UPDATE in SQLite, and none needed: a transaction is BEGIN IMMEDIATE (it holds
    # the database's write lock from its first statement), so a row read inside one cannot
    # change until it ends; for_update=True compiles to a plain SELECT
    row_locks = True
    drop_column = True
    alter_column_type = False
    alter_add_foreign_key = False  # no ALTER TABLE ADD CONSTRAINT: a foreign key is a table rebuild
    schema_discovery = True
    fk_cascade = True  # ON DELETE CASCADE
    fk_set_null = True  # ON DELETE SET NULL
    fk_restrict = True  # ON DELETE RESTRICT, and missing parents refused
    update_referenced_parent = True
    nul_in_text = True
    transactional_ddl = True
    json_contains = True
