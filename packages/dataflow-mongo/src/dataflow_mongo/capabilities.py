"""What the MongoDB adapter can do (read by the contract kit)."""

from dataflow.capabilities import Capabilities


class MongoCapabilities(Capabilities):
    name = "mongodb"
    # multi-document transactions over a client session (a replica set is required)
    transactions = True
    # MongoDB has no savepoints: a nested db.transaction() is refused (DF-501), and a bulk
    # operation that fails inside a caller's transaction aborts with the caller's block
    savepoints = False
    returning = True  # find_one_and_update / re-read inside the operation's transaction
    regex = True  # $regex (PCRE); the filter language's patterns are checked first
    unicode_ilike = True  # $ilike is a regex with the "i" option: Unicode case folding
    decimal_ordering = True  # Decimal128 compares numerically
    concurrent_writers = True  # document-level concurrency; conflicting writers get DF-904
    # no SELECT ... FOR UPDATE: a read never locks; for_update=True is refused (DF-501)
    row_locks = False
    drop_column = True  # $unset on every record, on opt-in
    alter_column_type = False  # stored values would need rewriting in place: refused
    alter_add_foreign_key = False
    # no foreign keys in MongoDB, and DataFlow does not emulate on_delete: fk_restrict,
    # fk_cascade and fk_set_null stay off, so a model that declares foreign_key= is refused
    # (DF-501) instead of being silently unenforced
    fk_restrict = False
    fk_cascade = False
    fk_set_null = False
    schema_discovery = True  # from DataFlow's own schema record (the metadata collection)
    nul_in_text = True  # BSON strings hold NUL
    json_contains = True  # compiled to an exact $expr (no implicit array traversal)
    transactional_ddl = False  # collections and indexes are created outside transactions
    # datetimes are BSON dates (what other MongoDB tools read), which count milliseconds:
    # finer input is truncated to the millisecond (refused in strict mode, DF-301)
    datetime_resolution = 1000
