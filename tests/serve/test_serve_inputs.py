"""Payload parsing and validation, without HTTP."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from training_jobs.serve.inputs import (
    ColumnSpec,
    InputError,
    InputSchema,
    SchemaError,
    build_frame,
    parse_json,
    to_columns,
)
from training_jobs.serve.model import split_predictions

SCHEMA = InputSchema(
    (
        ColumnSpec("age", "double"),
        ColumnSpec("plan", "string"),
        ColumnSpec("score", "double", required=False),
        ColumnSpec("calls", "long"),
        ColumnSpec("vip", "boolean"),
    )
)
ROW = {"age": 30.5, "plan": "basic", "score": None, "calls": 2, "vip": False}
NAMES = ["age", "plan", "score", "calls", "vip"]
EXPECTED = {"age": [30.5], "plan": ["basic"], "score": [None], "calls": [2], "vip": [False]}


@pytest.mark.parametrize(
    "document",
    [
        {"dataframe_split": {"columns": NAMES, "data": [[30.5, "basic", None, 2, False]]}},
        {"dataframe_records": [ROW]},
        {"instances": [ROW]},
        {"inputs": [ROW]},
        {"inputs": {k: [v] for k, v in ROW.items()}},
        {"instances": {k: [v] for k, v in ROW.items()}},
        # An optional column may be left out and comes back as null.
        {"dataframe_records": [{k: v for k, v in ROW.items() if k != "score"}]},
        {
            "dataframe_split": {
                "columns": ["age", "plan", "calls", "vip"],
                "data": [[30.5, "basic", 2, False]],
            }
        },
    ],
    ids=[
        "split",
        "records",
        "instances",
        "inputs",
        "inputs-columnar",
        "instances-columnar",
        "optional-absent",
        "split-optional-absent",
    ],
)
def test_every_scoring_shape_gives_the_same_columns(document: dict[str, Any]) -> None:
    parsed = to_columns(document, SCHEMA)
    assert parsed.n_rows == 1
    assert parsed.columns == EXPECTED


def _records(**changes: Any) -> dict[str, Any]:
    return {"dataframe_records": [ROW, {**ROW, **changes}]}


@pytest.mark.parametrize(
    ("document", "status", "message", "field", "row"),
    [
        (
            _records(age="old"),
            422,
            "column 'age' row 1: expected a number (double), got string",
            "age",
            1,
        ),
        (
            _records(age=True),
            422,
            "column 'age' row 1: expected a number (double), got boolean",
            "age",
            1,
        ),
        (
            _records(calls=2**63),
            422,
            "column 'calls' row 1: expected a 64-bit integer (long), got number 9223372036854775808",
            "calls",
            1,
        ),
        (
            _records(calls=2.5),
            422,
            "column 'calls' row 1: expected a 64-bit integer (long), got number",
            "calls",
            1,
        ),
        (
            _records(plan=3),
            422,
            "column 'plan' row 1: expected a string (string), got number",
            "plan",
            1,
        ),
        (_records(vip="yes"), 422, "column 'vip' row 1: expected true or false", "vip", 1),
        (_records(age=None), 422, "column 'age' row 1: null is not allowed", "age", 1),
        (
            _records(plan=[1]),
            422,
            "column 'plan' row 1: expected a string (string), got array",
            "plan",
            1,
        ),
        (_records(extra=1), 422, "unknown column 'extra' in row 1", "extra", 1),
        (
            {"dataframe_records": [ROW, {k: v for k, v in ROW.items() if k != "age"}]},
            422,
            "missing column 'age' in row 1",
            "age",
            1,
        ),
        (
            {
                "dataframe_split": {
                    "columns": ["plan", "score", "calls", "vip"],
                    "data": [["a", 1.0, 1, True]],
                }
            },
            422,
            "missing column 'age'",
            "age",
            None,
        ),
        (
            {"dataframe_split": {"columns": [*NAMES, "x"], "data": [[1.0, "a", 1.0, 1, True, 0]]}},
            422,
            "unknown column 'x'",
            "x",
            None,
        ),
        (
            {"dataframe_split": {"columns": NAMES, "data": [[1.0, "a", 1.0, 1]]}},
            400,
            "dataframe_split.data[0] must be a list of 5 values, got 4 values",
            None,
            0,
        ),
        (
            {"dataframe_split": {"columns": NAMES, "data": []}},
            422,
            "the input has no rows",
            None,
            None,
        ),
        ({"dataframe_records": []}, 422, "the input has no rows", None, None),
        (
            {"inputs": {"age": [1.0], "plan": ["a", "b"]}},
            400,
            "columns have different lengths",
            None,
            None,
        ),
        ({"dataframe_records": [1]}, 400, "dataframe_records[0] must be an object", None, 0),
        (
            {"dataframe_records": {"age": [1]}},
            400,
            "dataframe_records must be a list of row objects",
            None,
            None,
        ),
        ({"rows": []}, 400, "exactly one of dataframe_split, dataframe_records", None, None),
        (
            {"dataframe_records": [ROW], "instances": [ROW]},
            400,
            "got dataframe_records, instances",
            None,
            None,
        ),
        (
            {"dataframe_records": [ROW], "params": {}},
            400,
            "unsupported top-level keys ['params']",
            "params",
            None,
        ),
        ([ROW], 400, "the body must be a JSON object", None, None),
    ],
)
def test_bad_input_names_the_field_and_row(
    document: Any, status: int, message: str, field: str | None, row: int | None
) -> None:
    with pytest.raises(InputError) as caught:
        to_columns(document, SCHEMA)
    assert caught.value.status == status
    assert message in caught.value.message
    assert (caught.value.field, caught.value.row) == (field, row)


def test_malformed_json_is_a_400() -> None:
    with pytest.raises(InputError) as caught:
        parse_json(b'{"dataframe_records": [')
    assert caught.value.status == 400
    assert caught.value.message.startswith("malformed JSON")


def test_schema_comes_from_the_mlflow_signature_dict() -> None:
    schema = InputSchema.from_mlflow(
        [
            {"type": "double", "name": "a", "required": True},
            {"type": "string", "name": "b", "required": False},
        ]
    )
    assert schema.columns == (ColumnSpec("a", "double", True), ColumnSpec("b", "string", False))
    with pytest.raises(SchemaError, match="no input signature"):
        InputSchema.from_mlflow(None)
    with pytest.raises(SchemaError, match="type 'binary'"):
        InputSchema.from_mlflow([{"type": "binary", "name": "a"}])
    with pytest.raises(SchemaError, match="no column name"):
        InputSchema.from_mlflow([{"type": "tensor", "tensor-spec": {}}])


def test_a_batch_becomes_one_typed_frame() -> None:
    first = to_columns({"dataframe_records": [ROW]}, SCHEMA).columns
    second = to_columns(
        {"dataframe_records": [{**ROW, "score": 7, "calls": 5}] * 2}, SCHEMA
    ).columns
    frame = build_frame(SCHEMA, [first, second])
    assert len(frame) == 3
    assert frame["age"].dtype == np.float64
    assert frame["calls"].dtype == np.int64
    assert frame["vip"].dtype == np.bool_
    assert np.isnan(frame["score"].iloc[0])
    assert frame["score"].tolist()[1:] == [7.0, 7.0]
    assert frame["plan"].tolist() == ["basic"] * 3


def test_predictions_are_cut_back_per_request() -> None:
    assert split_predictions(np.array([1, 0, 1]), [1, 2]) == [[1], [0, 1]]
    with pytest.raises(ValueError, match="2 predictions for 3 rows"):
        split_predictions(np.array([1, 0]), [1, 2])


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01T00:00:00", "", 20261202])
def test_a_malformed_datetime_is_a_422_naming_the_field(value: object) -> None:
    schema = InputSchema((ColumnSpec("age", "double"), ColumnSpec("signed_up", "datetime")))
    document = {"dataframe_records": [{"age": 30.0, "signed_up": "2026-12-02T08:00:00"},
                                      {"age": 31.0, "signed_up": value}]}  # fmt: skip
    with pytest.raises(InputError) as caught:
        to_columns(document, schema)
    assert (caught.value.status, caught.value.field, caught.value.row) == (422, "signed_up", 1)
    assert "ISO 8601" in caught.value.message


def test_a_well_formed_datetime_is_accepted_and_parsed() -> None:
    schema = InputSchema((ColumnSpec("age", "double"), ColumnSpec("signed_up", "datetime")))
    parsed = to_columns({"inputs": {"age": [1.0], "signed_up": ["2026-12-02"]}}, schema)
    frame = build_frame(schema, [parsed.columns])
    assert str(frame["signed_up"].dtype).startswith("datetime64")
