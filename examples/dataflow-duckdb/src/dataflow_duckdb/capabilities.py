from typing import ClassVar

from dataflow.capabilities import Capabilities
from dataflow.errors import IntegrityError


class DuckDBCapabilities(Capabilities):
    """What DuckDB honours, as the contract kit found it (duckdb 1.1 - 2.0)."""

    name = "duckdb"
    transactions = True
    savepoints = False  # no SAVEPOINT statement
    returning = True
    regex = False  # RE2: \w and case folding are ASCII-only, not Python re
    unicode_ilike = True  # LOWER() folds all of Unicode
    decimal_ordering = False  # Decimals are stored as text to stay exact beyond DECIMAL(38)
    concurrent_writers = False  # one connection per event loop, used by one task at a time
    row_locks = False  # no SELECT ... FOR UPDATE
    drop_column = True
    fk_restrict = True
    fk_cascade = False  # "FOREIGN KEY constraints cannot use CASCADE, SET NULL or SET DEFAULT"
    fk_set_null = False
    # an UPDATE of a row that other rows reference fails once the table has any index
    # besides the key (DuckDB rewrites such an update as delete + insert)
    update_referenced_parent = False
    nul_in_text = True
    transactional_ddl = True
    known_failures: ClassVar[dict[str, tuple[type[BaseException], str]]] = {
        f"test_update_explicit_ids_then_generated_ones[{where}-True]": (IntegrityError, (
            "frames' staging merge writes explicit ids in one raw statement; this adapter moves "
            "the key's sequence past explicit ids in insert/upsert only")) for where in ("file", "memory")}
