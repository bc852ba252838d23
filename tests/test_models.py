"""Models, Json and the one serializer (in-process: no server needed)."""

import dataclasses
import datetime
from dataclasses import dataclass

import pytest
from marshmallow import ValidationError

from blaze_green import Json, model
from blaze_green.models import ModelError, dumps, is_model, load_model, schema_of


@model
@dataclass
class Update:
    type: str
    value: float


@model
@dataclass
class Batch:
    name: str
    items: list[Update]
    note: str | None = None
    tags: list[str] = dataclasses.field(default_factory=list)


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y


model(Point, "x", "y")


def test_schema_built_once_per_model():
    assert schema_of(Update) is schema_of(Update)
    assert is_model(Update) and is_model(Update("a", 1.0)) and not is_model(dict)


def test_dumps_models_json_and_nesting():
    assert dumps(Update("ticker", 89500.5)) == '{"type":"ticker","value":89500.5}'
    assert dumps(Point(1, 2)) == '{"x":1,"y":2}'
    assert dumps(Json({"status": "alive"})) == '{"status":"alive"}'
    assert dumps([Update("a", 1.0), Json([1])]) == '[{"type":"a","value":1.0},[1]]'
    assert dumps({"when": datetime.date(2026, 1, 2)}) == '{"when":"2026-01-02"}'
    batch = Batch("b", [Update("a", 1.0)])
    assert dumps(batch) == '{"name":"b","items":[{"type":"a","value":1.0}],"note":null,"tags":[]}'
    assert dumps("é") == '"é"'


def test_dumps_rejects_unknown_objects_with_advice():
    with pytest.raises(TypeError, match="@model"):
        dumps(object())


def test_load_model_validates_and_builds():
    assert load_model(Update, {"type": "t", "value": "1.5"}) == Update("t", 1.5)
    with pytest.raises(ValidationError) as err:
        load_model(Update, {"type": 3})
    assert err.value.messages == {
        "type": ["Not a valid string."],
        "value": ["Missing data for required field."],
    }
    with pytest.raises(ValidationError):
        load_model(Update, {"type": "t", "value": 1, "extra": 1})
    batch = load_model(Batch, {"name": "n", "items": [{"type": "a", "value": 2}]})
    assert batch == Batch("n", [{"type": "a", "value": 2.0}])  # nested values load as dicts
    assert load_model(Batch, {"name": "n", "items": [], "note": None}).note is None


def test_plain_class_model():
    p = load_model(Point, {"x": 1, "y": 2})
    assert isinstance(p, Point) and (p.x, p.y) == (1, 2)


def test_model_errors():
    class Plain:
        pass

    with pytest.raises(ModelError, match='model\\(Plain, "field1"'):
        model(Plain)
    with pytest.raises(ModelError):
        model(Plain, "not an identifier")
    with pytest.raises(ModelError):
        schema_of(Plain)


def test_json_equality():
    assert Json([1]) == Json([1])
    assert Json([1]) != [1]
