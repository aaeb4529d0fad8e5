"""What the MySQL / MariaDB adapter can do (read by the contract kit)."""

from dataflow.capabilities import Capabilities


class MySQLCapabilities(Capabilities):
    name = "mysql"
    transactions = True
    # SAVEPOINT / ROLLBACK TO SAVEPOINT on InnoDB
    savepoints = True
    # InnoDB undoes a failed statement alone (a deadlock rolls back the whole transaction:
    # DF-904, after which DataFlow refuses to commit)
    statement_rollback = True
    # no RETURNING clause on MySQL; the adapter still returns the stored rows, by reading
    # them back by key in the same transaction (and the same round trip)
    returning = False
    # REGEXP with an inline (?-i) / (?i) flag: exact whatever the collation
    regex = True
    # LOWER() on both sides under a binary collation: Unicode case mapping, accents kept
    unicode_ilike = True
    # DECIMAL(65, 30) columns compare numerically
    decimal_ordering = True
    # InnoDB row locks
    concurrent_writers = True
    # SELECT ... FOR UPDATE: a locking read sees the latest committed row, not the snapshot
    row_locks = True
    drop_column = True
    alter_column_type = True
    alter_add_foreign_key = True  # ALTER TABLE ... ADD CONSTRAINT ... FOREIGN KEY (InnoDB)
    schema_discovery = True
    fk_cascade = True  # ON DELETE CASCADE
    fk_set_null = True  # ON DELETE SET NULL
    fk_restrict = True  # ON DELETE RESTRICT, and missing parents refused
    update_referenced_parent = True
    nul_in_text = True
