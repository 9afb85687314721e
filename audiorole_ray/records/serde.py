"""Records to and from plain dicts (JSON markers, Ray rows) and their Arrow schemas.

Every record is a dataclass; its Parquet schema is derived from its field types, so a writer
cannot drift from its schema. A field's Arrow type can be narrowed with ``col(pa.int32())``.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from functools import lru_cache
from typing import Any, TypeVar

import pyarrow as pa

T = TypeVar("T")

_ARROW = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}


def col(arrow_type: pa.DataType | None = None, default: Any = dataclasses.MISSING, **kw):
    """A dataclass field with an explicit Arrow type (e.g. int32 where int64 would be wasteful)."""
    return dataclasses.field(default=default, metadata={"arrow": arrow_type}, **kw)


@lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _optional(tp) -> tuple[Any, bool]:
    """(inner type, nullable) of ``X | None``."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return tp, False


def _arrow_type(tp) -> pa.DataType:
    tp, _ = _optional(tp)
    if tp in _ARROW:
        return _ARROW[tp]
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        return pa.list_(_arrow_type(typing.get_args(tp)[0]))
    if dataclasses.is_dataclass(tp):
        return pa.struct([pa.field(n, t) for n, t in _fields(tp)])
    raise TypeError(f"no Arrow type for {tp!r}")


def _fields(cls: type) -> list[tuple[str, pa.DataType]]:
    hints = _hints(cls)
    return [(f.name, f.metadata.get("arrow") or _arrow_type(hints[f.name])) for f in dataclasses.fields(cls)]


@lru_cache(maxsize=None)
def schema(cls: type) -> pa.Schema:
    """The Arrow schema of a record class, in field order."""
    return pa.schema([pa.field(n, t) for n, t in _fields(cls)])


@lru_cache(maxsize=None)
def _plain(tp) -> bool:
    """Whether values of ``tp`` hold no record anywhere (so they pass through as they are)."""
    tp, _ = _optional(tp)
    if dataclasses.is_dataclass(tp):
        return False
    return all(_plain(a) for a in typing.get_args(tp) if a is not Ellipsis)


@lru_cache(maxsize=None)
def _plan(cls: type) -> tuple[tuple[str, Any, bool], ...]:
    """(field name, type, plain) of a record class, for the converters below."""
    hints = _hints(cls)
    return tuple((f.name, hints[f.name], _plain(hints[f.name])) for f in dataclasses.fields(cls))


def to_dict(obj) -> dict:
    """A record as plain data (JSON-able). Lists of plain values are shared, not copied: this is
    for serialising, and markers hold lists of thousands of floats."""
    return {name: getattr(obj, name) if plain else _plain_value(getattr(obj, name)) for name, _, plain in _plan(type(obj))}


def _plain_value(value):
    if dataclasses.is_dataclass(value):
        return to_dict(value)
    if isinstance(value, (list, tuple)):
        return [_plain_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain_value(v) for k, v in value.items()}
    return value


def from_dict(cls: type[T], data: dict) -> T:
    """Build a record (nested records, lists and dicts of records included) from plain data.
    Keys the class does not have are ignored, so older markers with extra fields still load."""
    return cls(**{name: value if plain else _value(tp, value)
                  for name, tp, plain in _plan(cls) if (value := data.get(name, _MISSING)) is not _MISSING})


_MISSING = object()


def _value(tp, value):
    tp, _ = _optional(tp)
    if value is None or _plain(tp):
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list:
        return [_value(args[0], v) for v in value]
    if origin is tuple:
        return tuple(_value(args[0], v) for v in value)
    if origin is dict:
        return {k: _value(args[1], v) for k, v in value.items()}
    return value


def to_table(records: list, cls: type) -> pa.Table:
    """An Arrow table of records (or of plain dicts with the record's keys) in ``cls``'s schema."""
    rows = [r if isinstance(r, dict) else to_dict(r) for r in records]
    return pa.Table.from_pylist(rows, schema=schema(cls))
