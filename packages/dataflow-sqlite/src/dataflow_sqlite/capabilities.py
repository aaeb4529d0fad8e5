"""What the SQLite adapter can do (read by the contract kit)."""

from dataflow.capabilities import Capabilities


class SQLiteCapabilities(Capabilities):
    name = "sqlite"
    transactions = True
    savepoints = True
    returning = True
    regex = True  # Python's re, through a registered function
    unicode_ilike = True  # Python casefold matching, through a registered function
    decimal_ordering = False  # Decimals are stored as text to stay exact
    concurrent_writers = False  # one writer at a time
    drop_column = True
    alter_column_type = False
    schema_discovery = True
    nul_in_text = True
    transactional_ddl = True
