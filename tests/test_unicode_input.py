"""Text that is not valid Unicode (lone surrogates) is refused with a DF error naming the field,
on every path, before any SQL; valid non-ASCII text passes untouched."""

from __future__ import annotations

import pytest

from dataflow import DataFlow
from dataflow.errors import BulkValidationError, ValidationError


async def test_lone_surrogates_are_refused_everywhere() -> None:
    db = DataFlow("sqlite://:memory:")

    @db.model
    class Note:
        text: str

    bad = "ab\ud800cd"
    with pytest.raises(ValidationError) as err:
        await db.express.create("Note", {"text": bad})
    assert err.value.code == "DF-301" and err.value.field == "text"
    with pytest.raises(BulkValidationError) as bulk:
        await db.express.bulk_create("Note", [{"text": "fine"}, {"text": bad}])
    assert bulk.value.failures[0]["index"] == 1
    with pytest.raises(BulkValidationError):
        await db.express.bulk_upsert("Note", [{"id": 1, "text": bad}])
    with pytest.raises(ValidationError):
        await db.express.list("Note", {"text": bad})
    assert await db.express.count("Note") == 0
    rec = await db.express.create("Note", {"text": "héllo ✓ 𝄞 עברית"})
    assert (await db.express.read("Note", rec["id"]))["text"] == "héllo ✓ 𝄞 עברית"
    await db.close()
