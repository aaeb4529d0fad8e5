"""What a backend can do, declared once per adapter.

The contract kit reads these flags: a test that names a capability the adapter
declares runs normally; one it does not declare must raise
:class:`~dataflow.errors.UnsupportedError` (the adapter refuses honestly). Known
bugs go in ``known_failures`` and become strict xfails with ``raises=``.
"""

from __future__ import annotations

from typing import ClassVar


class Capabilities:
    """Base declaration: everything off. Adapters subclass and switch on what they do."""

    #: adapter name, as in ``pool_stats`` and error messages
    name: ClassVar[str] = "base"
    #: BEGIN/COMMIT/ROLLBACK spanning several statements
    transactions: ClassVar[bool] = False
    #: nested transactions as savepoints
    savepoints: ClassVar[bool] = False
    #: a statement that fails inside a transaction is undone alone and the transaction
    #: stays usable (SQLite, InnoDB). Where not declared, DataFlow runs each statement of a
    #: user's transaction under its own savepoint (or, without savepoints, refuses to
    #: commit a transaction in which a statement failed)
    statement_rollback: ClassVar[bool] = False
    #: INSERT/UPDATE ... RETURNING
    returning: ClassVar[bool] = False
    #: ``$regex`` evaluated exactly as Python's ``re.search`` would on the stored text
    #: (the reference semantics: Unicode classes, so ``\w`` matches ``é`` and ``\d`` matches
    #: ``٣``), case-sensitive unless ``$options: "i"``. An engine whose classes are ASCII-only
    #: (RE2, POSIX in the C locale) does not declare it, or evaluates the pattern with ``re``.
    regex: ClassVar[bool] = False
    #: ``$ilike`` case-insensitive for all of Unicode, not only ASCII
    unicode_ilike: ClassVar[bool] = False
    #: ``$gt``/``$lt``/order_by on Decimal fields compare numerically
    decimal_ordering: ClassVar[bool] = False
    #: several connections writing at once (row-level locking)
    concurrent_writers: ClassVar[bool] = False
    #: ``express.read(..., for_update=True)`` inside a transaction keeps the row from
    #: changing under the caller until the transaction ends: ``SELECT ... FOR UPDATE``, or
    #: write transactions that are serialised anyway (SQLite's ``BEGIN IMMEDIATE``)
    row_locks: ClassVar[bool] = False
    #: ALTER TABLE ... DROP COLUMN (destructive migration, on opt-in)
    drop_column: ClassVar[bool] = False
    #: change a column's type in place (destructive migration, on opt-in)
    alter_column_type: ClassVar[bool] = False
    #: ALTER TABLE ... ADD CONSTRAINT ... FOREIGN KEY: a foreign key added to a live table
    #: is an additive step; without it the adapter rebuilds the table (destructive, opt-in)
    alter_add_foreign_key: ClassVar[bool] = False
    #: ``field(foreign_key=..., on_delete="cascade")``: deleting a parent deletes its children
    fk_cascade: ClassVar[bool] = False
    #: ``on_delete="set null"``: deleting a parent clears the children's key
    fk_set_null: ClassVar[bool] = False
    #: ``on_delete="restrict"`` (the default): deleting a referenced parent is refused (DF-902)
    #: and a child naming a missing parent is refused (DF-902). Without it no foreign key can
    #: be declared at all.
    fk_restrict: ClassVar[bool] = False
    #: updating a row that other rows reference (its non-key fields, ``updated_at``) works;
    #: engines that rewrite an updated row as delete + insert may refuse it as a key violation
    update_referenced_parent: ClassVar[bool] = False
    #: read an existing database's tables, columns and keys
    schema_discovery: ClassVar[bool] = False
    #: strings with NUL characters stored intact
    nul_in_text: ClassVar[bool] = False
    #: ``$contains`` on JSON fields with PostgreSQL ``@>`` semantics, exactly
    json_contains: ClassVar[bool] = False
    #: DDL inside a transaction: a failed migration leaves nothing half-applied
    transactional_ddl: ClassVar[bool] = False
    #: the finest step a stored datetime keeps, in microseconds: 1 (microseconds, as
    #: PostgreSQL's timestamptz, MySQL's DATETIME(6) and SQLite's text keep them) or 1000
    #: (milliseconds, as BSON dates). Finer input is truncated to this step before it is
    #: written or compared (so the record returned equals the record read back); strict
    #: mode refuses it instead (DF-301). A divisor of 1,000,000.
    datetime_resolution: ClassVar[int] = 1
    #: known bugs: test name -> (exception raised, reason). Becomes a strict xfail.
    known_failures: ClassVar[dict[str, tuple[type[BaseException], str]]] = {}

    @classmethod
    def supports(cls, capability: str) -> bool:
        if not hasattr(Capabilities, capability) or capability in (
                "name", "known_failures", "datetime_resolution"):
            raise AttributeError(f"unknown capability {capability!r}")
        return bool(getattr(cls, capability))

    @classmethod
    def all_names(cls) -> list[str]:
        return [
            n for n, v in vars(Capabilities).items()
            if isinstance(v, bool) and not n.startswith("_")
        ]
