"""Inference capture: batching by size and time, drops when full, objects in (emulated) S3."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import orjson
import pytest
from moto import mock_aws

from tests.serve.serve_helpers import (
    EVENTUALLY_S,
    Registry,
    eventually,
    rows_payload,
    serve_in_thread,
    settings,
)
from training_jobs import contract
from training_jobs.drift.sources import capture_hour_prefixes, capture_keys
from training_jobs.serve.capture import CaptureEntry, CaptureSink, capture_key

BUCKET = "captures-test"
KEY = re.compile(
    r"^captures/churn/date=\d{4}-\d{2}-\d{2}/hour=\d{2}/\d{8}T\d{12}Z-[0-9a-f]{12}\.jsonl$"
)


class _Recorder:
    def __init__(self) -> None:
        self.objects: list[tuple[str, list[dict[str, Any]]]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def put_object(self, **kwargs: Any) -> None:
        self.entered.set()
        assert self.gate.wait(EVENTUALLY_S), "the test never let the upload finish"
        lines = kwargs["Body"].decode().splitlines()
        self.objects.append((kwargs["Key"], [orjson.loads(line) for line in lines]))


def _entry(i: int, rows: int = 1) -> CaptureEntry:
    return CaptureEntry(
        datetime(2026, 3, 4, 5, 6, tzinfo=UTC),
        f"req-{i}",
        "churn",
        "7",
        {"age": [30.0 + i] * rows, "plan": ["basic"] * rows},
        [i % 2] * rows,
        rows,
    )


def _sink(s3: Any, *, batch: int, bound: int, drops: list[tuple[int, str]]) -> CaptureSink:
    return CaptureSink(
        s3,
        bucket=BUCKET,
        prefix=contract.PREFIX_CAPTURES,
        batch_records=batch,
        flush_interval_s=3_600,
        max_buffered_records=bound,
        on_dropped=lambda n, reason: drops.append((n, reason)),
    )


def test_key_is_partitioned_by_model_date_and_hour() -> None:
    key = capture_key("captures/", "churn", datetime(2026, 3, 4, 5, 6, 7, 8, tzinfo=UTC))
    assert key.startswith("captures/churn/date=2026-03-04/hour=05/20260304T050607000008Z-")
    assert KEY.match(key)


def test_batches_by_size_and_flushes_the_rest_on_close() -> None:
    s3, drops = _Recorder(), []
    sink = _sink(s3, batch=3, bound=10, drops=drops)
    sink.start()
    for i in range(7):
        assert sink.offer(_entry(i))
    eventually(lambda: len(s3.objects) == 2, "two full batches uploaded")
    sink.close()
    assert [len(records) for _, records in s3.objects] == [3, 3, 1]
    first = s3.objects[0][1][0]
    assert first == {
        "captured_at": "2026-03-04T05:06:00+00:00",
        "request_id": "req-0",
        "model_name": "churn",
        "model_version": "7",
        "inputs": {"age": 30.0, "plan": "basic"},
        "prediction": 0,
    }
    assert [r["request_id"] for _, rs in s3.objects for r in rs] == [f"req-{i}" for i in range(7)]
    assert drops == []


def test_a_full_buffer_drops_and_counts_instead_of_blocking() -> None:
    s3, drops = _Recorder(), []
    s3.gate.clear()  # the upload hangs, as a slow S3 would
    sink = _sink(s3, batch=2, bound=4, drops=drops)
    sink.start()
    assert sink.offer(_entry(0, rows=2))
    # The writer took those two rows and is stuck uploading them.
    assert s3.entered.wait(EVENTUALLY_S), "the writer never started an upload"
    assert sink.offer(_entry(1, rows=4))
    assert not sink.offer(_entry(2, rows=1))
    assert drops == [(1, "buffer_full")]
    assert sink.buffered_records == 4
    s3.gate.set()
    sink.close()
    assert sum(len(records) for _, records in s3.objects) == 6
    assert not sink.offer(_entry(3))  # closed: nothing is accepted after the final flush


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _captured(s3: Any) -> list[tuple[str, list[dict[str, Any]]]]:
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=contract.PREFIX_CAPTURES)
    out = []
    for obj in sorted(listing.get("Contents", []), key=lambda o: o["Key"]):
        body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
        out.append((obj["Key"], [orjson.loads(line) for line in body.splitlines()]))
    return out


def test_served_requests_land_in_s3_in_batches(registry: Registry, s3: Any) -> None:
    config = settings(
        registry,
        capture_enabled=True,
        capture_batch_records=4,
        capture_buffer_records=100,
        capture_flush_interval_s=3_600,
    )
    answers = {}
    with serve_in_thread(config, s3=s3, capture_bucket=BUCKET) as running, running.client() as c:
        for i in range(3):
            rows = registry.rows.iloc[2 * i : 2 * i + 2]
            r = c.post("/invocations", json=rows_payload(rows), headers={"x-request-id": f"r{i}"})
            assert r.status_code == 200
            answers[f"r{i}"] = (rows, r.json()["predictions"])
        first = eventually(lambda: _captured(s3), "the first full batch uploaded")
        assert [len(records) for _, records in first] == [4]
    # Stopping the server flushed the remaining two rows.
    objects = _captured(s3)
    assert sorted(len(records) for _, records in objects) == [2, 4]
    assert all(KEY.match(key) for key, _ in objects)
    seen = [r for _, records in objects for r in records]
    assert sorted(r["request_id"] for r in seen) == ["r0", "r0", "r1", "r1", "r2", "r2"]
    for request_id, (rows, predictions) in answers.items():
        mine = [r for r in seen if r["request_id"] == request_id]
        assert [r["prediction"] for r in mine] == predictions
        assert [r["inputs"]["tenure_months"] for r in mine] == rows["tenure_months"].tolist()
        assert {r["model_version"] for r in mine} == {"1"}


class _StuckS3:
    """moto's S3, but uploads wait for the test, as a slow S3 would."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.entered = threading.Event()

    def put_object(self, **kwargs: Any) -> Any:
        self.entered.set()
        assert self.gate.wait(EVENTUALLY_S), "the test never let the upload finish"
        return self.inner.put_object(**kwargs)


def test_a_full_capture_buffer_drops_counts_and_never_fails_a_request(
    registry: Registry, s3: Any
) -> None:
    config = settings(
        registry,
        capture_enabled=True,
        capture_batch_records=2,
        capture_buffer_records=4,
        capture_flush_interval_s=3_600,
    )
    stuck = _StuckS3(s3)
    with serve_in_thread(config, s3=stuck, capture_bucket=BUCKET) as running, running.client() as c:

        def post(n: int, start: int) -> int:
            rows = registry.rows.iloc[start : start + n]
            return c.post("/invocations", json=rows_payload(rows)).status_code

        assert post(2, 0) == 200
        # The writer holds those two rows in a hanging upload.
        assert stuck.entered.wait(EVENTUALLY_S), "the writer never started an upload"
        assert post(4, 2) == 200  # fills the buffer
        assert post(3, 6) == 200  # does not fit: dropped, yet answered
        metrics = c.get("/metrics").text
        assert 'mlops_serve_capture_dropped_records_total{reason="buffer_full"} 3.0' in metrics
        assert "mlops_serve_capture_buffered_records 4.0" in metrics
        stuck.gate.set()
    assert sum(len(records) for _, records in _captured(s3)) == 6


def test_a_batch_across_an_hour_boundary_lands_in_the_partitions_the_drift_job_lists(
    s3: Any,
) -> None:
    before = datetime(2026, 3, 4, 5, 59, 59, 900_000, tzinfo=UTC)
    after = datetime(2026, 3, 4, 6, 0, 0, 100_000, tzinfo=UTC)
    sink = _sink(s3, batch=10, bound=10, drops=[])
    sink.start()
    for i, when in enumerate((before, after)):
        entry = _entry(i)
        assert sink.offer(CaptureEntry(when, *[getattr(entry, f) for f in _FIELDS]))
    sink.close()  # one batch of two records, captured in two different hours

    for start, request in ((before, "req-0"), (after, "req-1")):
        hour = start.replace(minute=0, second=0, microsecond=0)
        # The drift job's window of that hour lists exactly its partition.
        prefixes = capture_hour_prefixes("churn", hour, hour + timedelta(hours=1))
        keys = capture_keys(s3, BUCKET, prefixes)
        assert len(keys) == 1, f"{hour:%H}:00 window finds {keys}"
        records = [
            orjson.loads(line)
            for line in s3.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read().splitlines()
        ]
        assert [r["request_id"] for r in records] == [request]


_FIELDS = ("request_id", "model_name", "model_version", "columns", "predictions", "n_rows")
