"""Models and JSON: one marshmallow schema per model, simplejson for every JSON byte.

`@model` (dataclasses) and `model(Cls, "field", ...)` (plain classes, the BLAZE_MODEL form) build
the schema once and attach it to the class. `dumps` turns any response or message value (dicts,
lists, `Json`, model instances, nested in each other) into compact JSON text.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import inspect
import types
import typing
import uuid
from typing import Any, TypeVar

import simplejson
from marshmallow import RAISE, Schema, ValidationError, fields

from .ws.frames import OP_BINARY, OP_TEXT

__all__ = [
    "Json",
    "ModelError",
    "dumps",
    "encode_message",
    "is_model",
    "load_model",
    "loads",
    "model",
    "schema_of",
]

T = TypeVar("T")

_SCHEMA_ATTR = "__blaze_schema__"


class ModelError(TypeError):
    """A class cannot be turned into a model (for example a plain class with no field names)."""


class Json:
    """Any JSON value, marked for serialization: `Json({"status": "alive"})`."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Json({self.value!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Json) and other.value == self.value

    __hash__ = None  # type: ignore[assignment]  # mutable payload


_SIMPLE_FIELDS: dict[Any, type[fields.Field[Any]]] = {
    str: fields.String,
    int: fields.Integer,
    float: fields.Float,
    bool: fields.Boolean,
    decimal.Decimal: fields.Decimal,
    datetime.datetime: fields.DateTime,
    datetime.date: fields.Date,
    datetime.time: fields.Time,
    uuid.UUID: fields.UUID,
}


def _field_for(tp: Any, *, required: bool, default: Any = dataclasses.MISSING) -> fields.Field[Any]:
    """A marshmallow field for one type hint (unknown hints accept any JSON value)."""
    kwargs: dict[str, Any] = {"required": required}
    if default is not dataclasses.MISSING:
        kwargs["load_default"] = default
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        inner = rest[0] if len(rest) == 1 else Any
        field = _field_for(inner, required=required, default=default)
        field.allow_none = True
        return field
    if tp in _SIMPLE_FIELDS:
        return _SIMPLE_FIELDS[tp](**kwargs)
    if origin in (list, tuple, set, frozenset) or tp in (list, tuple, set):
        item = _field_for(args[0], required=True) if args and args[0] is not ... else fields.Raw()
        return fields.List(item, **kwargs)
    if origin is dict or tp is dict:
        return fields.Dict(**kwargs)
    if isinstance(tp, type) and is_model(tp):
        return fields.Nested(schema_of(tp), **kwargs)
    return fields.Raw(**kwargs)


def _build_schema(cls: type, names: tuple[str, ...]) -> Schema:
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # forward references that cannot resolve: fall back to "any value"
        hints = {}
    declared: dict[str, fields.Field[Any]] = {}
    if dataclasses.is_dataclass(cls) and not names:
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory
            else:
                default = dataclasses.MISSING
            declared[f.name] = _field_for(
                hints.get(f.name, Any), required=default is dataclasses.MISSING, default=default
            )
    else:
        for name in names:
            declared[name] = _field_for(hints.get(name, Any), required=True)
    schema_cls = Schema.from_dict(declared, name=f"{cls.__name__}Schema")
    schema_cls.Meta.unknown = RAISE
    return schema_cls()


@typing.overload
def model(cls: type[T]) -> type[T]: ...
@typing.overload
def model(cls: type[T], *field_names: str) -> type[T]: ...


def model(cls: type[T], *field_names: str) -> type[T]:
    """Make `cls` a model: `@model` on a dataclass, or `model(Point, "x", "y")` for a plain class.

    The schema is built once, here, and reused for every serialization and validation.
    """
    if not isinstance(cls, type):
        raise ModelError(f"model() takes a class, got {cls!r}")
    if not field_names and not dataclasses.is_dataclass(cls):
        raise ModelError(
            f"{cls.__name__} is not a dataclass: name its fields, as in "
            f'model({cls.__name__}, "field1", "field2")'
        )
    for name in field_names:
        if not isinstance(name, str) or not name.isidentifier():
            raise ModelError(f"model field names must be identifiers, got {name!r}")
    setattr(cls, _SCHEMA_ATTR, _build_schema(cls, field_names))
    return cls


def is_model(cls_or_obj: Any) -> bool:
    cls = cls_or_obj if isinstance(cls_or_obj, type) else type(cls_or_obj)
    return hasattr(cls, _SCHEMA_ATTR)


def schema_of(cls: type) -> Schema:
    schema: Schema | None = getattr(cls, _SCHEMA_ATTR, None)
    if schema is None:
        raise ModelError(f"{cls.__name__} is not a model: decorate it with @model")
    return schema


def _default(obj: Any) -> Any:
    """simplejson hook for everything that is not plain JSON."""
    if isinstance(obj, Json):
        return obj.value
    schema = getattr(type(obj), _SCHEMA_ATTR, None)
    if schema is not None:
        return schema.dump(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, (datetime.datetime, datetime.date, datetime.time)):
        return obj.isoformat()
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise TypeError(
        f"{type(obj).__name__} is not JSON serializable: return a dict, list, Json(...) "
        "or an instance of a class registered with @model / model(Cls, ...)"
    )


def dumps(value: Any) -> str:
    """Compact JSON text for any message or response value."""
    if isinstance(value, Json):
        value = value.value
    return simplejson.dumps(value, default=_default, separators=(",", ":"), ensure_ascii=False)


def encode_message(data: Any) -> tuple[int, bytes]:
    """(opcode, payload) of a WebSocket message: `str` is text, bytes-like binary, anything
    else JSON text through `dumps` (the one place messages are serialized)."""
    if isinstance(data, str):
        return OP_TEXT, data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return OP_BINARY, bytes(data)
    return OP_TEXT, dumps(data).encode("utf-8")


def loads(text: str | bytes) -> Any:
    return simplejson.loads(text)


def load_model(cls: type[T], data: Any) -> T:
    """Validate `data` against the model's schema and build an instance.

    Raises marshmallow's ValidationError with per-field messages.
    """
    schema = schema_of(cls)
    if not isinstance(data, dict):
        raise ValidationError({"_schema": ["Invalid input type: expected a JSON object."]})
    values = schema.load(data)
    try:
        inspect.signature(cls).bind(**values)
        accepts = True
    except TypeError:
        accepts = False
    if accepts:
        return cls(**values)
    # A plain class whose constructor does not take the fields: set them as attributes.
    obj = cls.__new__(cls)
    for name, value in values.items():
        setattr(obj, name, value)
    return obj
