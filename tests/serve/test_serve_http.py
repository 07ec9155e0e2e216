"""The server over real HTTP on loopback: scoring shapes, every bad input, health, metrics."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.serve.serve_helpers import (
    EVENTUALLY_S,
    RawRequest,
    Registry,
    RunningServer,
    eventually,
    records,
    rows_payload,
    serve_in_thread,
    settings,
)
from training_jobs.serve.model import PATH_COMPILED, PATH_PYFUNC, LoadedModel, MlflowModelSource

MAX_BODY = 64 * 1024


@pytest.fixture(scope="module", params=[PATH_COMPILED, PATH_PYFUNC])
def server(registry: Registry, request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    """The same registered version, served on each path: every test below runs on both."""
    config = settings(registry, max_body_bytes=MAX_BODY)
    with serve_in_thread(config, prefer_compiled=request.param == PATH_COMPILED) as running:
        assert running.app.model is not None and running.app.model.path == request.param
        yield running


@pytest.fixture(scope="module")
def expected(registry: Registry) -> list[int]:
    """What the registered scikit-learn pipeline itself predicts for the test rows."""
    import mlflow
    import mlflow.sklearn

    client = mlflow.MlflowClient(registry.tracking_uri)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=client.get_model_version_download_uri(registry.model_name, "1"),
        tracking_uri=registry.tracking_uri,
    )
    return [int(v) for v in mlflow.sklearn.load_model(local).predict(registry.rows)]


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def _columnar(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {k: [r[k] for r in rows] for k in rows[0]}


@pytest.mark.parametrize("shape", ["dataframe_split", "dataframe_records", "instances", "inputs"])
@pytest.mark.parametrize("route", ["/invocations", "/predict"])
def test_predictions_match_the_pipeline_for_every_scoring_shape(
    client: httpx.Client, registry: Registry, expected: list[int], shape: str, route: str
) -> None:
    rows = registry.rows.head(50)
    body = {
        "dataframe_split": rows_payload(rows),
        "dataframe_records": {"dataframe_records": records(rows)},
        "instances": {"instances": records(rows)},
        "inputs": {"inputs": _columnar(records(rows))},
    }[shape]
    response = client.post(route, json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": expected[:50]}
    assert response.headers["x-model-name"] == "churn"
    assert response.headers["x-model-version"] == "1"


def test_request_id_is_echoed(client: httpx.Client, registry: Registry) -> None:
    response = client.post(
        "/invocations", json=rows_payload(registry.rows.head(1)), headers={"x-request-id": "abc-1"}
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "abc-1"


def _one(registry: Registry, **changes: Any) -> dict[str, Any]:
    row = records(registry.rows.head(1))[0]
    row.update(changes)
    return {"dataframe_records": [records(registry.rows.iloc[1:2])[0], row]}


def _without(registry: Registry, column: str) -> dict[str, Any]:
    row = records(registry.rows.head(1))[0]
    del row[column]
    return {"dataframe_records": [row]}


BAD_INPUTS = [
    (
        "wrong-type",
        lambda r: _one(r, age="forty"),
        422,
        "column 'age' row 1: expected a number",
        "age",
        1,
    ),
    (
        "bool-for-number",
        lambda r: _one(r, devices=True),
        422,
        "column 'devices' row 1",
        "devices",
        1,
    ),
    (
        "number-for-string",
        lambda r: _one(r, plan=1),
        422,
        "column 'plan' row 1: expected a string",
        "plan",
        1,
    ),
    (
        "null-not-allowed",
        lambda r: _one(r, tenure_months=None),
        422,
        "column 'tenure_months' row 1: null is not allowed",
        "tenure_months",
        1,
    ),
    (
        "missing-column",
        lambda r: _without(r, "region"),
        422,
        "missing column 'region' in row 0",
        "region",
        0,
    ),
    (
        "extra-column",
        lambda r: _one(r, favourite_colour="red"),
        422,
        "unknown column 'favourite_colour' in row 1",
        "favourite_colour",
        1,
    ),
    (
        "empty-records",
        lambda r: {"dataframe_records": []},
        422,
        "the input has no rows",
        None,
        None,
    ),
    (
        "empty-split",
        lambda r: {"dataframe_split": {"columns": list(r.rows.columns), "data": []}},
        422,
        "the input has no rows",
        None,
        None,
    ),
    ("no-known-key", lambda r: {"data": []}, 400, "exactly one of dataframe_split", None, None),
    (
        "ragged-split",
        lambda r: {"dataframe_split": {"columns": list(r.rows.columns), "data": [[1.0]]}},
        400,
        "dataframe_split.data[0] must be a list of 20 values, got 1 values",
        None,
        0,
    ),
]


@pytest.mark.parametrize(
    ("make", "status", "message", "field", "row"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_is_a_4xx_naming_field_and_row(
    client: httpx.Client,
    registry: Registry,
    make: Any,
    status: int,
    message: str,
    field: str | None,
    row: int | None,
) -> None:
    response = client.post("/invocations", json=make(registry))
    assert response.status_code == status
    body = response.json()
    assert message in body["message"]
    assert body.get("field") == field
    assert body.get("row") == row
    assert body["error_code"] in {"BAD_REQUEST", "INVALID_PARAMETER_VALUE"}


def test_satisfaction_score_may_be_null_because_the_signature_says_optional(
    client: httpx.Client, registry: Registry
) -> None:
    response = client.post("/invocations", json=_one(registry, satisfaction_score=None))
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 2


def test_malformed_json_is_a_400(client: httpx.Client) -> None:
    response = client.post(
        "/invocations",
        content=b'{"dataframe_split": {',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith("malformed JSON")


@pytest.mark.parametrize("content_type", ["text/csv", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_a_415(
    client: httpx.Client, registry: Registry, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post(
        "/invocations", content=orjson.dumps(rows_payload(registry.rows.head(1))), headers=headers
    )
    assert response.status_code == 415
    assert "send application/json" in response.json()["message"]


def test_content_type_parameters_are_accepted(client: httpx.Client, registry: Registry) -> None:
    response = client.post(
        "/invocations",
        content=orjson.dumps(rows_payload(registry.rows.head(1))),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200


def test_body_over_the_limit_by_content_length_is_a_413(client: httpx.Client) -> None:
    response = client.post(
        "/invocations", content=b" " * (MAX_BODY + 1), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert f"exceeds the limit of {MAX_BODY} bytes" in response.json()["message"]


def test_body_over_the_limit_when_streamed_without_length_is_a_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY // 1024 + 8):
            yield b" " * 1024

    response = client.post(
        "/invocations", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers  # sent chunked
    assert response.status_code == 413
    assert response.json()["message"] == f"body exceeds the limit of {MAX_BODY} bytes"


def test_a_body_just_under_the_limit_is_read(client: httpx.Client, registry: Registry) -> None:
    body = orjson.dumps(rows_payload(registry.rows.head(2)))
    padded = body + b" " * (MAX_BODY - len(body))
    response = client.post(
        "/invocations", content=padded, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200


def test_unknown_route_and_wrong_method(client: httpx.Client) -> None:
    assert client.get("/nope").status_code == 404
    response = client.get("/invocations")
    assert (response.status_code, response.headers["allow"]) == (405, "POST")
    assert client.post("/health/ready").status_code == 405


def test_health_says_which_path_serves(client: httpx.Client, server: RunningServer) -> None:
    assert client.get("/health/live").json() == {"status": "alive"}
    ready = client.get("/health/ready").json()
    path = server.app.model.path if server.app.model else "?"
    assert {k: ready[k] for k in ("status", "model", "version", "path")} == {
        "status": "ready",
        "model": "churn",
        "version": "1",
        "path": path,
    }
    # The pyfunc path here is chosen (the compiled path turned off), and says so.
    assert ("note" in ready) is (path == PATH_PYFUNC)
    assert "turned off" in ready.get("note", "turned off")
    assert client.get("/ping").status_code == 200  # what `mlflow models serve` clients probe


def test_metrics_carry_routes_statuses_batches_and_the_model_version(
    client: httpx.Client, registry: Registry, server: RunningServer
) -> None:
    path = server.app.model.path if server.app.model else "?"
    assert client.post("/invocations", json=rows_payload(registry.rows.head(3))).status_code == 200
    assert client.post("/invocations", json={"dataframe_records": []}).status_code == 422
    text = client.get("/metrics").text
    assert 'mlops_serve_requests_total{route="/invocations",status="200"}' in text
    assert 'mlops_serve_requests_total{route="/invocations",status="422"}' in text
    assert (
        'mlops_serve_request_duration_seconds_bucket{le="0.5",route="/invocations",status="200"}'
        in text
    )
    assert f'mlops_serve_model_info{{name="churn",path="{path}",version="1"}} 1.0' in text
    other = PATH_PYFUNC if path == PATH_COMPILED else PATH_COMPILED
    assert f'mlops_serve_model_path{{path="{path}"}} 1.0' in text
    assert f'mlops_serve_model_path{{path="{other}"}} 0.0' in text
    assert 'mlops_serve_model_version{model="churn"} 1.0' in text
    assert 'mlops_serve_capture_dropped_records_total{reason="buffer_full"} 0.0' in text
    assert "mlops_serve_batch_rows_bucket" in text
    assert "mlops_serve_prediction_value_count" in text
    count = next(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("mlops_serve_prediction_value_count")
    )
    assert count >= 3


class _GatedSource:
    """The real registry, but loading waits until the test opens the gate."""

    def __init__(self, inner: MlflowModelSource) -> None:
        self.inner = inner
        self.name = inner.name
        self.gate = threading.Event()

    def resolve(self) -> str:
        return self.inner.resolve()

    def load(self, version: str) -> LoadedModel:
        assert self.gate.wait(EVENTUALLY_S), "the test never let the model load"
        return self.inner.load(version)


def test_not_ready_until_the_model_is_loaded(registry: Registry) -> None:
    config = settings(registry)
    source = _GatedSource(
        MlflowModelSource(
            "churn", "champion", tracking_uri=registry.tracking_uri, registry_uri=None
        )
    )
    with serve_in_thread(config, source=source, wait_ready=False) as running, running.client() as c:
        assert c.get("/health/live").status_code == 200
        assert c.get("/health/ready").json() == {"status": "loading"}
        early = c.post("/invocations", json=rows_payload(registry.rows.head(1)))
        assert (early.status_code, early.headers["retry-after"]) == (503, "1")
        source.gate.set()
        eventually(lambda: c.get("/health/ready").status_code == 200, "ready after load")
        assert c.post("/invocations", json=rows_payload(registry.rows.head(1))).status_code == 200


def test_overload_beyond_max_concurrency_is_a_503_with_retry_after(registry: Registry) -> None:
    with serve_in_thread(settings(registry, max_concurrency=1, retry_after_s=3)) as running:
        body = orjson.dumps(rows_payload(registry.rows.head(1)))
        held = RawRequest(running.port, body)  # half-sent: occupies the one slot
        try:
            with running.client() as c:

                def shed() -> httpx.Response | None:
                    r = c.post(
                        "/invocations", content=body, headers={"content-type": "application/json"}
                    )
                    return r if r.status_code == 503 else None

                response = eventually(shed, "second request shed")
                assert response.headers["retry-after"] == "3"
                assert "overloaded: 1 requests in flight" in response.json()["message"]
                status, reply = held.finish()
                assert status == 200
                assert len(orjson.loads(reply)["predictions"]) == 1
                ok = c.post(
                    "/invocations", content=body, headers={"content-type": "application/json"}
                )
                assert ok.status_code == 200
        finally:
            held.close()
