"""Python values <-> BSON values, per field of a model.

* ``id`` is stored as ``_id``: str as is, UUID as a standard binary UUID (subtype 4),
  int as a 64-bit integer.
* Decimal as Decimal128 (exact, compared numerically); a value Decimal128 cannot hold
  exactly (more than 34 significant digits) is refused rather than rounded.
* datetime as fixed-width UTC ISO-8601 text (``2024-03-01T12:30:15.123456Z``) and date
  as ``YYYY-MM-DD``: BSON dates keep milliseconds only, DataFlow keeps microseconds as the
  SQL backends do, and fixed-width UTC text sorts and compares chronologically.
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


def dt_text(v: _dt.datetime) -> str:
    """A UTC datetime as fixed-width text that sorts chronologically."""
    if v.tzinfo is not None:
        v = v.astimezone(UTC)
    return f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}." \
        f"{v.microsecond:06d}Z"


def text_dt(v: Any) -> Any:
    if isinstance(v, str):
        return _dt.datetime.fromisoformat(v[:-1]).replace(tzinfo=UTC)
    if isinstance(v, _dt.datetime):  # written by another tool as a BSON date
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
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
        return dt_text
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
        return text_dt
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
