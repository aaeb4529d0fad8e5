"""Models: turning an annotated class into a :class:`ModelSpec`.

A model is declared once with type hints; this module reads the hints into field
specs (logical type, nullability, default, key and index flags) and validates the
names that will later be used as SQL identifiers.
"""

from __future__ import annotations

import datetime as _dt
import enum
import re
import types
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from decimal import Decimal
from typing import Any

from .errors import ModelDefinitionError

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
MANAGED_TIMESTAMPS = ("created_at", "updated_at")
TENANT_FIELD = "tenant_id"
#: the tombstone column of a model declared with ``__dataflow__ = {"soft_delete": True}``
SOFT_DELETE_FIELD = "deleted_at"


class LogicalType(enum.Enum):
    """Backend-neutral column types; each dialect maps them to its own DDL types."""

    STR = "str"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    DATETIME = "datetime"
    DATE = "date"
    DECIMAL = "decimal"
    UUID = "uuid"
    JSON = "json"
    ENUM = "enum"


_SIMPLE_TYPES: dict[Any, LogicalType] = {
    str: LogicalType.STR,
    int: LogicalType.INT,
    float: LogicalType.FLOAT,
    bool: LogicalType.BOOL,
    _dt.datetime: LogicalType.DATETIME,
    _dt.date: LogicalType.DATE,
    Decimal: LogicalType.DECIMAL,
    uuid.UUID: LogicalType.UUID,
    dict: LogicalType.JSON,
    list: LogicalType.JSON,
}


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass
class FieldOptions:
    """Extra column options, given as ``name: str = field(unique=True)``."""

    default: Any = MISSING
    default_factory: Callable[[], Any] | None = None
    unique: bool = False
    index: bool = False
    max_length: int | None = None
    primary_key: bool = False
    vector: int | None = None
    foreign_key: Any = None
    on_delete: str | None = None


def field(
    *,
    default: Any = MISSING,
    default_factory: Callable[[], Any] | None = None,
    unique: bool = False,
    index: bool = False,
    max_length: int | None = None,
    vector: int | None = None,
    foreign_key: Any = None,
    on_delete: str | None = None,
) -> Any:
    """Declare column options for a model field (unique, index, max_length, default).

    ``vector=n`` marks a ``list[float]`` field as an n-dimensional embedding, for
    backends with a vector type (pgvector); elsewhere it is a JSON list.

    ``foreign_key=`` references another model's key: the model class, ``"Model"`` (its
    ``id``) or ``"Model.field"`` (its primary key or a ``unique`` field).
    ``on_delete=`` says what deleting the referenced row does: ``"restrict"`` (the
    default: refused while rows reference it), ``"cascade"`` (the referencing rows are
    deleted too) or ``"set null"`` (they keep living with the field set to None; the
    field must be ``Optional``).
    """
    return FieldOptions(default, default_factory, unique, index, max_length, vector=vector,
                        foreign_key=foreign_key, on_delete=on_delete)


#: ``on_delete`` spellings -> the SQL action
ON_DELETE_ACTIONS = {"cascade": "CASCADE", "set null": "SET NULL", "restrict": "RESTRICT"}


@dataclass(eq=False)
class ForeignKey:
    """A foreign key of a model: ``column`` references ``target.target_field``.

    ``target_table`` is filled in when the owning DataFlow instance knows the target
    model (:func:`resolve_foreign_keys`); DDL needs it.
    """

    column: str
    target: str
    target_field: str
    on_delete: str
    name: str
    target_table: str | None = None

    @property
    def action(self) -> str:
        return ON_DELETE_ACTIONS[self.on_delete]


def constraint_name(prefix: str, table: str, columns: tuple[str, ...] | list[str]) -> str:
    """``{prefix}_{table}_{cols}``, shortened with a hash to fit 63 characters."""
    name = f"{prefix}_{table}_{'_'.join(columns)}"
    if len(name) > 63:
        import hashlib

        name = name[:50] + "_" + hashlib.sha1(name.encode()).hexdigest()[:12]
    return name


@dataclass
class FieldSpec:
    """One column of a model."""

    name: str
    ltype: LogicalType
    python_type: Any
    nullable: bool = False
    default: Any = MISSING
    default_factory: Callable[[], Any] | None = None
    primary_key: bool = False
    auto_increment: bool = False
    generated_uuid: bool = False
    managed: bool = False
    unique: bool = False
    index: bool = False
    max_length: int | None = None
    enum_cls: type[enum.Enum] | None = None
    pydantic_cls: Any = None
    json_kind: type | None = None
    #: dimensions of an embedding declared with ``field(vector=n)``
    vector: int | None = None
    #: SQL default the database applies when an insert omits the column (discovered tables)
    server_default: str | None = None
    #: the tenant column of a tenant-scoped model (set from the bound tenant, never widened)
    tenant: bool = False
    #: the soft-delete tombstone (managed; NULL while the row is live)
    tombstone: bool = False

    @property
    def required(self) -> bool:
        """Must the caller supply this field on create?"""
        return (
            self.server_default is None
            and not self.nullable
            and self.default is MISSING
            and self.default_factory is None
            and not self.auto_increment
            and not self.generated_uuid
            and not self.managed
        )

    def make_default(self) -> Any:
        if self.default_factory is not None:
            return self.default_factory()
        if self.default is MISSING:
            return None
        return self.default

    @property
    def has_default(self) -> bool:
        return self.default is not MISSING or self.default_factory is not None


@dataclass(eq=False)
class ModelSpec:
    """Everything DataFlow knows about a model: its table, fields and constraints."""

    name: str
    table: str
    fields: dict[str, FieldSpec]
    cls: type
    unique_together: list[tuple[str, ...]] = dc_field(default_factory=list)
    indexes: list[tuple[str, ...]] = dc_field(default_factory=list)
    options: dict[str, Any] = dc_field(default_factory=dict)
    foreign_keys: list[ForeignKey] = dc_field(default_factory=list)

    @property
    def pk(self) -> FieldSpec:
        return self.fields["id"]

    @property
    def tenant_scoped(self) -> bool:
        """Does every statement on this model carry the bound tenant's predicate?"""
        f = self.fields.get(TENANT_FIELD)
        return f is not None and f.tenant

    @property
    def soft_delete(self) -> bool:
        """Do deletes set the ``deleted_at`` tombstone, and do reads skip tombstoned rows?"""
        f = self.fields.get(SOFT_DELETE_FIELD)
        return f is not None and f.tombstone

    @property
    def columns(self) -> list[str]:
        return list(self.fields)

    @property
    def writable(self) -> list[str]:
        """Fields a caller may set (everything but the managed timestamps)."""
        return [n for n, f in self.fields.items() if not f.managed]

    def unique_keys(self) -> list[tuple[str, ...]]:
        """Every column set that identifies at most one row (for upsert conflict targets)."""
        keys: list[tuple[str, ...]] = [("id",)]
        keys += [(n,) for n, f in self.fields.items() if f.unique and n != "id"]
        keys += list(self.unique_together)
        return keys


def table_name_for(class_name: str) -> str:
    """The documented rule: CamelCase class name -> snake_case table name, no plural.

    ``User`` -> ``user``, ``FlowRun`` -> ``flow_run``, ``HTTPLog`` -> ``http_log``.
    """
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(hint))
        if len(args) != 1:
            raise TypeError(f"union of several types {hint!r} is not a column type")
        return args[0], nullable
    return hint, False


def _is_pydantic_model(tp: Any) -> bool:
    # pydantic is imported only when the user's own class came from it
    import sys

    pyd = sys.modules.get("pydantic")
    return bool(pyd is not None and isinstance(tp, type) and issubclass(tp, pyd.BaseModel))


def _field_from_hint(model: str, name: str, hint: Any) -> FieldSpec:
    if typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    base, nullable = _unwrap_optional(hint)
    origin = typing.get_origin(base) or base
    if isinstance(origin, type) and issubclass(origin, enum.Enum):
        return FieldSpec(name, LogicalType.ENUM, base, nullable, enum_cls=origin)
    if _is_pydantic_model(origin):
        return FieldSpec(name, LogicalType.JSON, base, nullable, pydantic_cls=origin)
    ltype = _SIMPLE_TYPES.get(origin)
    if ltype is None:
        raise ModelDefinitionError(
            f"field type {hint!r} is not supported.",
            model=model,
            field=name,
            fix="use str, int, float, bool, datetime, date, Decimal, UUID, dict, list, "
            "an Enum, a pydantic model, or Optional[...] of these.",
        )
    json_kind = origin if ltype is LogicalType.JSON else None
    return FieldSpec(name, ltype, base, nullable, json_kind=json_kind)


_KEY_TYPES = (LogicalType.INT, LogicalType.STR, LogicalType.UUID)


def _parse_foreign_key(model: str, spec: FieldSpec, opts: FieldOptions) -> tuple[str, str, str]:
    """``field(foreign_key=..., on_delete=...)`` -> (target model, target field, on_delete),
    checked for everything that does not need the target model itself."""
    fname = spec.name
    target = opts.foreign_key
    if target is None:
        raise ModelDefinitionError(
            "on_delete is set but the field has no foreign_key.", model=model, field=fname,
            fix="add foreign_key='Model' (or 'Model.id', or the model class), or drop on_delete.")
    target_field = "id"
    if isinstance(target, str):
        target_name, _, ref = target.partition(".")
        target_field = ref or "id"
        if not IDENTIFIER.match(target_name) or not IDENTIFIER.match(target_field) or (
                ref == "" and target.endswith(".")):
            raise ModelDefinitionError(
                f"foreign_key {target!r:.80} is not 'Model' or 'Model.field'.",
                model=model, field=fname,
                fix="name the referenced model (and optionally its key field), e.g. "
                "foreign_key='Author' or foreign_key='Author.id'.")
    elif isinstance(target, type):
        declared = getattr(target, "__dataflow_model__", None)
        target_name = declared.name if declared is not None else target.__name__
    else:
        raise ModelDefinitionError(
            f"foreign_key must be a model class or a 'Model' / 'Model.field' string, "
            f"not {type(target).__name__}.", model=model, field=fname,
            fix="write foreign_key=Author or foreign_key='Author.id'.")
    on_delete = "restrict" if opts.on_delete is None else opts.on_delete
    key = on_delete.strip().lower().replace("_", " ") if isinstance(on_delete, str) else None
    if key not in ON_DELETE_ACTIONS:
        raise ModelDefinitionError(
            f"on_delete {on_delete!r:.40} is not one of 'cascade', 'set null', 'restrict'.",
            model=model, field=fname,
            fix="use on_delete='cascade', 'set null' or 'restrict' (the default).")
    if key == "set null" and not spec.nullable:
        raise ModelDefinitionError(
            "on_delete='set null' needs a field that can hold None.", model=model, field=fname,
            fix=f"declare it Optional ({fname}: int | None = field(...)), or use 'cascade' "
            "or 'restrict'.")
    if spec.ltype not in _KEY_TYPES:
        raise ModelDefinitionError(
            f"a foreign key field must be int, str or UUID, not {spec.python_type!r}.",
            model=model, field=fname, fix="give it the type of the referenced key.")
    return target_name, target_field, key


def resolve_foreign_keys(models: dict[str, ModelSpec], only: list[ModelSpec] | None = None,
                         *, require: bool = True) -> None:
    """Link each foreign key of ``only`` (default: all ``models``) to its target's table,
    checking the target exists, is a key, and has the same type (DF-201 otherwise).
    With ``require=False``, keys whose target model is not declared yet are left open."""
    for spec in (models.values() if only is None else only):
        for fk in spec.foreign_keys:
            target = models.get(fk.target)
            if target is None:
                if not require:
                    continue
                raise ModelDefinitionError(
                    f"foreign key references unknown model '{fk.target}'.",
                    model=spec.name, field=fk.column,
                    fix=f"declare @db.model class {fk.target} on the same DataFlow instance, "
                    "or correct the name.")
            ref = target.fields.get(fk.target_field)
            if ref is None or not (ref.primary_key or ref.unique):
                raise ModelDefinitionError(
                    f"foreign key references {fk.target}.{fk.target_field}, which is not "
                    f"{'a field' if ref is None else 'its primary key or a unique field'}.",
                    model=spec.name, field=fk.column,
                    fix=f"reference '{fk.target}.id' or a field declared field(unique=True).")
            own = spec.fields[fk.column]
            if own.ltype is not ref.ltype:
                raise ModelDefinitionError(
                    f"foreign key type {own.ltype.value} does not match "
                    f"{fk.target}.{fk.target_field} ({ref.ltype.value}).",
                    model=spec.name, field=fk.column,
                    fix=f"declare the field with the type of {fk.target}.{fk.target_field}.")
            fk.target_table = target.table


def _check_identifier(model: str, kind: str, name: Any) -> None:
    if not isinstance(name, str):
        raise ModelDefinitionError(
            f"{kind} name must be a str, got {type(name).__name__} {name!r:.60}.",
            model=model,
            fix=f"write the {kind} name as text, e.g. __tablename__ = \"orders\".",
        )
    if not IDENTIFIER.match(name):
        raise ModelDefinitionError(
            f"{kind} name {name!r} is not a valid identifier.",
            model=model,
            fix="use letters, digits and underscores, starting with a letter or underscore, "
            "at most 63 characters.",
        )


def build_model_spec(cls: type, *, extra_fields: dict[str, FieldSpec] | None = None,
                     tenant_scoped: bool = False) -> ModelSpec:
    """Read a class's type hints into a :class:`ModelSpec`."""
    name = cls.__name__
    _check_identifier(name, "model", name)
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except NameError as exc:
        raise ModelDefinitionError(
            f"cannot resolve a type hint ({exc}).",
            model=name,
            fix="define the types the hints name at module level before the model.",
        ) from exc
    options: dict[str, Any] = dict(getattr(cls, "__dataflow__", {}) or {})
    table = getattr(cls, "__tablename__", None) or table_name_for(name)
    _check_identifier(name, "table", table)

    fields: dict[str, FieldSpec] = {}
    fk_targets: dict[str, tuple[str, str, str]] = {}
    for fname, hint in hints.items():
        if fname.startswith("__") or typing.get_origin(hint) is typing.ClassVar:
            continue
        if fname.startswith("_"):
            continue
        _check_identifier(name, "field", fname)
        if fname in MANAGED_TIMESTAMPS:
            raise ModelDefinitionError(
                f"'{fname}' is managed by DataFlow and cannot be declared.",
                model=name,
                field=fname,
                fix=f"remove '{fname}' from the class; every model has it already.",
            )
        try:
            spec = _field_from_hint(name, fname, hint)
        except TypeError as exc:
            raise ModelDefinitionError(str(exc), model=name, field=fname) from exc
        raw_default = cls.__dict__.get(fname, MISSING)
        if isinstance(raw_default, FieldOptions):
            spec.default = raw_default.default
            spec.default_factory = raw_default.default_factory
            spec.unique = raw_default.unique
            spec.index = raw_default.index
            spec.max_length = raw_default.max_length
            spec.vector = raw_default.vector
            if raw_default.foreign_key is not None or raw_default.on_delete is not None:
                fk_targets[fname] = _parse_foreign_key(name, spec, raw_default)
                spec.index = spec.index or not spec.unique  # parent deletes look children up
        else:
            spec.default = raw_default
        if isinstance(spec.default, (dict, list)):
            value = spec.default
            spec.default_factory = lambda v=value: __import__("copy").deepcopy(v)
            spec.default = MISSING
        if spec.vector is not None and (spec.json_kind is not list or isinstance(spec.vector, bool)
                                        or not isinstance(spec.vector, int) or spec.vector < 1):
            raise ModelDefinitionError(
                "vector=n applies to list[float] fields, with n a positive int.",
                model=name, field=fname)
        if spec.max_length is not None and spec.ltype is not LogicalType.STR:
            raise ModelDefinitionError(
                "max_length applies to str fields only.", model=name, field=fname
            )
        fields[fname] = spec

    if "id" in fields:
        pk = fields["id"]
        if pk.ltype not in (LogicalType.INT, LogicalType.STR, LogicalType.UUID):
            raise ModelDefinitionError(
                f"primary key 'id' must be int, str or UUID, not {pk.python_type!r}.",
                model=name,
                field="id",
            )
        if pk.nullable:
            raise ModelDefinitionError("primary key 'id' cannot be Optional.", model=name, field="id")
        pk.primary_key = True
        pk.auto_increment = pk.ltype is LogicalType.INT and not pk.has_default
        pk.generated_uuid = pk.ltype is LogicalType.UUID and not pk.has_default
    else:
        fields = {
            "id": FieldSpec("id", LogicalType.INT, int, primary_key=True, auto_increment=True),
            **fields,
        }
    fields = {"id": fields.pop("id"), **fields}
    tenant_scoped = tenant_scoped and options.get("tenant_scoped", True)
    if tenant_scoped:
        if TENANT_FIELD in fields:
            raise ModelDefinitionError(
                f"'{TENANT_FIELD}' is added by multi-tenant DataFlow and cannot be declared.",
                model=name, field=TENANT_FIELD,
                fix="remove it, or set __dataflow__ = {{'tenant_scoped': False}} for a shared model.")
        fields = {"id": fields.pop("id"),
                  TENANT_FIELD: FieldSpec(TENANT_FIELD, LogicalType.STR, str, tenant=True, index=True),
                  **fields}
    for extra_name, extra in (extra_fields or {}).items():
        fields.setdefault(extra_name, extra)
    fields["created_at"] = FieldSpec("created_at", LogicalType.DATETIME, _dt.datetime, managed=True)
    fields["updated_at"] = FieldSpec("updated_at", LogicalType.DATETIME, _dt.datetime, managed=True)
    soft_delete = options.get("soft_delete", False)
    if not isinstance(soft_delete, bool):
        raise ModelDefinitionError(
            f"__dataflow__['soft_delete'] must be True or False, got {soft_delete!r:.40}.",
            model=name, fix='use __dataflow__ = {"soft_delete": True}.')
    if soft_delete:
        if SOFT_DELETE_FIELD in fields:
            raise ModelDefinitionError(
                f"'{SOFT_DELETE_FIELD}' is managed by soft delete and cannot be declared.",
                model=name, field=SOFT_DELETE_FIELD,
                fix=f"remove '{SOFT_DELETE_FIELD}' from the class; soft delete adds it.")
        fields[SOFT_DELETE_FIELD] = FieldSpec(SOFT_DELETE_FIELD, LogicalType.DATETIME, _dt.datetime,
                                              nullable=True, managed=True, tombstone=True)

    unique_together = [tuple(u) for u in options.get("unique", options.get("unique_together", []))]
    indexes = [tuple([i] if isinstance(i, str) else i) for i in options.get("indexes", [])]
    for group in unique_together + indexes:
        for col in group:
            if col not in fields:
                raise ModelDefinitionError(
                    f"constraint names unknown field '{col}'.", model=name, field=col
                )
    if tenant_scoped:
        # uniqueness holds within a tenant: unique fields become (tenant_id, field)
        for fname, f in fields.items():
            if f.unique and not f.primary_key:
                f.unique = False
                unique_together.append((TENANT_FIELD, fname))
        unique_together = [g if TENANT_FIELD in g else (TENANT_FIELD, *g) for g in unique_together]
    foreign_keys = [ForeignKey(col, target, target_field, on_delete,
                               constraint_name("fk", table, (col,)))
                    for col, (target, target_field, on_delete) in fk_targets.items()]
    return ModelSpec(name, table, fields, cls, unique_together, indexes, options,
                     foreign_keys=foreign_keys)
