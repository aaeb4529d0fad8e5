"""Python values <-> BSON values, per field of a model.

* ``id`` is stored as ``_id``: str as is, UUID as a standard binary UUID (subtype 4),
  int as a 64-bit integer.
* Decimal as Decimal128 (exact, compared numerically); a value Decimal128 cannot hold
  exactly (more than 34 significant digits) is refused rather than rounded.
* datetime as a BSON date (UTC), what every other MongoDB tool reads and writes. BSON dates
  keep milliseconds: the adapter declares ``datetime_resolution = 1000``, so DataFlow
  truncates finer input to the millisecond before it is written or compared (strict mode
  refuses it, DF-301), and the record returned is the record stored. Dates read back as
  aware UTC datetimes (the client decodes with ``tz_aware=True, tzinfo=UTC``). Values an
  earlier version stored as fixed-width UTC text (``2024-03-01T12:30:15.123456Z``) still read
  back as datetimes, but filters and sorts compare them as text, not dates: rewrite them
  once with :func:`dataflow_mongo.adapter.MongoAdapter.convert_text_datetimes`.
* date as ``YYYY-MM-DD`` text (BSON has no date-only type; the text sorts chronologically).
* Enum as its value; pydantic models as their JSON-mode dump; dict/list as embedded
  documents and arrays (so ``$contains`` can look inside them).
"""

from __future__ import annotations

import datetime as _dt
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from bson.codec_options import TypeEncoder, TypeRegistry
from bson.decimal128 import Decimal128

from dataflow.errors import ValidationError
from dataflow.model import FieldSpec, LogicalType, ModelSpec

Encoder = Callable[[Any], Any]
Decoder = Callable[[Any], Any]

UTC = _dt.UTC


#: microseconds a BSON date keeps (it counts milliseconds since the epoch)
BSON_DATETIME_RESOLUTION = 1000


def bson_datetime(v: _dt.datetime) -> _dt.datetime:
    """An aware datetime as the BSON date the server will hold: UTC, milliseconds (the
    validator has already truncated DataFlow's own values; this keeps the rule for values
    that reach the codec another way)."""
    if v.tzinfo is not UTC:
        v = v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
    extra = v.microsecond % BSON_DATETIME_RESOLUTION
    return v.replace(microsecond=v.microsecond - extra) if extra else v


def read_datetime(v: Any) -> Any:
    """A stored datetime -> aware UTC: a BSON date (decoded aware by the client), or text
    written by an earlier version of this adapter (``...123456Z``)."""
    if type(v) is _dt.datetime and v.tzinfo is UTC:
        return v
    if isinstance(v, _dt.datetime):
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
    if isinstance(v, str):
        return _dt.datetime.fromisoformat(v[:-1] if v.endswith("Z") else v).replace(tzinfo=UTC)
    return v


def _decimal(v: Decimal) -> Decimal:
    """A Decimal checked to fit Decimal128 exactly; the client's type registry stores it as
    Decimal128 (the value stays a hashable, numerically compared Decimal until then)."""
    try:
        Decimal128(v)
    except (ArithmeticError, ValueError):  # Inexact / Overflow under Decimal128's context
        raise ValidationError(
            f"{v} does not fit MongoDB's Decimal128 exactly (34 significant digits, "
            "exponent -6176..6111); nothing was written.",
            fix="round the value to 34 significant digits.") from None
    return v


class DecimalEncoder(TypeEncoder):
    """Python ``Decimal`` -> BSON Decimal128, for every client DataFlow opens."""

    @property
    def python_type(self) -> type:
        return Decimal

    def transform_python(self, value: Any) -> Any:
        return Decimal128(value)


TYPE_REGISTRY = TypeRegistry([DecimalEncoder()])


def _undecimal(v: Any) -> Any:
    if isinstance(v, Decimal128):
        return v.to_decimal()
    if isinstance(v, (int, float, str)) and not isinstance(v, bool):
        return Decimal(str(v))
    return v


def _date(v: _dt.date) -> str:
    return v.isoformat()


def _undate(v: Any) -> Any:
    if isinstance(v, str):
        return _dt.date.fromisoformat(v)
    if isinstance(v, _dt.datetime):
        return v.date()
    return v


def encoder(f: FieldSpec) -> Encoder | None:
    """Canonical Python value (already validated) -> BSON value; None: stored as is."""
    lt = f.ltype
    if lt is LogicalType.DATETIME:
        return bson_datetime
    if lt is LogicalType.DATE:
        return _date
    if lt is LogicalType.DECIMAL:
        return _decimal
    if lt is LogicalType.ENUM:
        return _enum_value
    if lt is LogicalType.JSON:
        return _json_encoder(f)
    return None


def _json_encoder(f: FieldSpec) -> Encoder:
    """JSON values become embedded documents; their keys are field names to MongoDB, so a key
    that begins with ``$``, holds ``.`` or NUL is refused (DF-301) -- never stored, never
    read back as an operator. Integers beyond 64 bits (JSON has no limit, BSON has) are
    stored exactly as Decimal128 -- which plain JSON never holds, so they read back as int --
    up to 34 digits; longer ones are refused."""
    from .security import check_value

    dump = _pydantic_dump if f.pydantic_cls is not None else None
    name = f.name

    def encode(v: Any) -> Any:
        value = dump(v) if dump is not None else v
        if isinstance(value, (dict, list)):
            try:
                check_value(value, f"JSON field '{name}'")
                return _wide_ints(value, name)
            except ValidationError as exc:
                raise ValidationError(exc.message, field=name, fix=exc.fix) from None
        if type(value) is int and not INT64_MIN <= value <= INT64_MAX:
            return _wide_ints(value, name)
        return value

    return encode


INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1


def _wide_ints(v: Any, name: str) -> Any:
    if type(v) is int:
        if INT64_MIN <= v <= INT64_MAX:
            return v
        if len(str(abs(v))) > 34:
            raise ValidationError(f"JSON field '{name}' holds the integer {v!r:.40}, longer than "
                                  "the 34 digits MongoDB stores exactly.", field=name,
                                  fix="store it as a string.")
        return Decimal128(Decimal(v))
    if isinstance(v, dict):
        return {k: _wide_ints(x, name) for k, x in v.items()}
    if isinstance(v, list):
        return [_wide_ints(x, name) for x in v]
    return v


def _enum_value(v: Any) -> Any:
    return v.value


def _pydantic_dump(v: Any) -> Any:
    return v.model_dump(mode="json")


def decoder(f: FieldSpec) -> Decoder | None:
    """BSON value -> the field's declared Python type; None: taken as is."""
    lt = f.ltype
    if lt is LogicalType.DATETIME:
        return read_datetime
    if lt is LogicalType.DATE:
        return _undate
    if lt is LogicalType.DECIMAL:
        return _undecimal
    if lt is LogicalType.ENUM:
        cls = f.enum_cls
        assert cls is not None
        return cls
    if lt is LogicalType.JSON and f.pydantic_cls is not None:
        validate = f.pydantic_cls.model_validate
        return lambda v: validate(plain_json(v))
    if lt is LogicalType.JSON:
        return plain_json
    if lt is LogicalType.FLOAT:
        return float
    if lt is LogicalType.INT:
        return _int
    if lt is LogicalType.UUID:
        return _uuid
    if lt is LogicalType.BOOL:
        return _bool
    return None


def plain_json(v: Any) -> Any:
    """JSON as stored -> plain Python: BSON's 64-bit integers (``Int64``) become ``int``."""
    if isinstance(v, dict):
        return {k: plain_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain_json(x) for x in v]
    if isinstance(v, int) and type(v) is not int and type(v) is not bool:
        return int(v)
    if isinstance(v, Decimal128):  # an integer wider than 64 bits (see _json_encoder)
        return int(v.to_decimal())
    return v


def _int(v: Any) -> Any:
    return v if type(v) is int else int(v)  # bson's Int64 subclass -> plain int


def _uuid(v: Any) -> Any:
    return v if isinstance(v, uuid.UUID) else uuid.UUID(str(v))


def _bool(v: Any) -> Any:
    return v if v is True or v is False else bool(v)


def field_name(name: str) -> str:
    """The document key of a model field (``id`` is MongoDB's ``_id``)."""
    return "_id" if name == "id" else name


class ModelCodec:
    """Per model: record dict <-> document, built once and cached by the adapter."""

    def __init__(self, model: ModelSpec) -> None:
        self.model = model
        self.encoders: dict[str, Encoder | None] = {n: encoder(f) for n, f in model.fields.items()}
        decoders = [(n, field_name(n), decoder(f)) for n, f in model.fields.items()]
        self._decoders = decoders

    def value(self, name: str, v: Any) -> Any:
        """One canonical value of field ``name`` as stored."""
        if v is None:
            return None
        enc = self.encoders[name]
        return v if enc is None else enc(v)

    def document(self, row: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        encoders = self.encoders
        for k, v in row.items():
            enc = encoders[k]
            out["_id" if k == "id" else k] = v if v is None or enc is None else enc(v)
        return out

    def record(self, doc: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        get = doc.get
        for name, key, dec in self._decoders:
            v = get(key)
            out[name] = v if v is None or dec is None else dec(v)
        return out
