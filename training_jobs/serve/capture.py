"""Inference capture: inputs and outputs to S3 in JSON Lines batches, off the request path.

Requests only append to a bounded in-memory buffer (O(1), never blocking); a background
thread turns entries into one JSON object per row and uploads a batch when it holds
`batch_records` rows or `flush_interval_s` has passed, and once more on close. When the
buffer is full, new entries are dropped and counted: serving never waits on S3.

Keys: `<prefix><model>/date=YYYY-MM-DD/hour=HH/<UTC timestamp>-<random>.jsonl`, one line per
row: `{"captured_at", "request_id", "model_name", "model_version", "inputs": {...},
"prediction"}`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from training_jobs import contract
from training_jobs.serve.inputs import Columns

log = logging.getLogger(__name__)


class S3Put(Protocol):
    def put_object(self, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class CaptureEntry:
    """One answered request."""

    captured_at: datetime
    request_id: str
    model_name: str
    model_version: str
    columns: Columns
    predictions: list[Any]
    n_rows: int


def capture_key(prefix: str, model_name: str, when: datetime) -> str:
    stamp = when.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    partition = contract.capture_partition(model_name, when, prefix)
    return f"{partition}{stamp}-{uuid.uuid4().hex[:12]}.jsonl"


def encode_jsonl(entries: Iterable[CaptureEntry]) -> bytes:
    lines = []
    for e in entries:
        head: dict[str, Any] = {
            "captured_at": e.captured_at.isoformat(),
            "request_id": e.request_id,
            "model_name": e.model_name,
            "model_version": e.model_version,
        }
        names = list(e.columns)
        for i in range(e.n_rows):
            record = dict(head)
            record["inputs"] = {n: e.columns[n][i] for n in names}
            record["prediction"] = e.predictions[i]
            lines.append(orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY))
    return b"\n".join(lines) + b"\n" if lines else b""


class CaptureSink:
    """A bounded buffer plus the thread that uploads it."""

    def __init__(
        self,
        s3: S3Put,
        *,
        bucket: str,
        prefix: str,
        batch_records: int,
        flush_interval_s: float,
        max_buffered_records: int,
        on_dropped: Callable[[int, str], None] = lambda n, reason: None,
        on_uploaded: Callable[[int], None] = lambda n: None,
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._prefix = prefix
        self._batch_records = batch_records
        self._flush_interval_s = flush_interval_s
        self._max_buffered = max_buffered_records
        self._on_dropped = on_dropped
        self._on_uploaded = on_uploaded
        self._entries: deque[CaptureEntry] = deque()
        self._buffered = 0
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)

    @property
    def buffered_records(self) -> int:
        return self._buffered

    def start(self) -> None:
        self._thread.start()

    def offer(self, entry: CaptureEntry) -> bool:
        """Buffer `entry` unless full or closed; never blocks on I/O."""
        with self._cond:
            if self._closing or self._buffered + entry.n_rows > self._max_buffered:
                accepted = False
            else:
                self._entries.append(entry)
                self._buffered += entry.n_rows
                accepted = True
                if self._buffered >= self._batch_records:
                    self._cond.notify()
        if not accepted:
            self._on_dropped(entry.n_rows, "buffer_full")
        return accepted

    def close(self, timeout_s: float | None = None) -> None:
        """Stop taking entries, upload what is buffered, and wait for the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _take(self) -> list[CaptureEntry]:
        taken: list[CaptureEntry] = []
        rows = 0
        while self._entries and rows < self._batch_records:
            entry = self._entries.popleft()
            taken.append(entry)
            rows += entry.n_rows
        self._buffered -= rows
        return taken

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._closing and self._buffered < self._batch_records:
                    self._cond.wait(self._flush_interval_s)
                batch = self._take()
                done = self._closing and not self._entries
            if batch:
                self._upload(batch)
            if done:
                return

    def _upload(self, batch: list[CaptureEntry]) -> None:
        # One object per partition: a batch that spans an hour (or a model) boundary is
        # split, so each record lands in the partition of its own capture time.
        parts: dict[str, list[CaptureEntry]] = {}
        for entry in batch:
            partition = contract.capture_partition(entry.model_name, entry.captured_at)
            parts.setdefault(partition, []).append(entry)
        for part in parts.values():
            self._upload_part(part)

    def _upload_part(self, batch: list[CaptureEntry]) -> None:
        rows = sum(e.n_rows for e in batch)
        key = capture_key(self._prefix, batch[0].model_name, batch[0].captured_at)
        try:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=encode_jsonl(batch),
                ContentType="application/x-ndjson",
            )
        except Exception:  # any upload failure loses this batch; logged and counted
            log.exception(
                "capture upload to s3://%s/%s failed; %d records lost", self._bucket, key, rows
            )
            self._on_dropped(rows, "upload_failed")
            return
        self._on_uploaded(rows)
        log.debug("captured %d records to s3://%s/%s", rows, self._bucket, key)
