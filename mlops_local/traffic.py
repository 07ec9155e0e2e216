"""A small, bounded HTTP client for the local model server: send rows, poll, read metrics.

Loopback only, one keep-alive connection, a timeout on every request and a cap on every
loop. Every answer is counted; anything but a 200 with predictions for every row is a
failure, kept with its status and the start of its body so the demo can show it.
"""

from __future__ import annotations

import http.client
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import pandas as pd

from training_jobs import schema

LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_FAILURES_KEPT: Final = 5


class TrafficError(Exception):
    """The server did not behave as the demo needs; the message says what happened."""


@dataclass
class Tally:
    """What the server answered: requests, rows, the versions that answered, failures."""

    requests: int = 0
    rows: int = 0
    failed: int = 0
    versions: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.requests += other.requests
        self.rows += other.rows
        self.failed += other.failed
        for version, count in other.versions.items():
            self.versions[version] = self.versions.get(version, 0) + count
        self.failures.extend(other.failures[: MAX_FAILURES_KEPT - len(self.failures)])


def payload(frame: pd.DataFrame) -> bytes:
    """MLflow's `dataframe_split` body with the model's features; NaN becomes null."""
    names = list(schema.FEATURE_NAMES)
    rows = [
        [None if isinstance(v, float) and math.isnan(v) else v for v in row]
        for row in frame[names].itertuples(index=False, name=None)
    ]
    return json.dumps({"dataframe_split": {"columns": names, "data": rows}}).encode()


class ServerClient:
    def __init__(self, host: str, port: int, *, timeout_s: float = 10.0) -> None:
        if host not in LOOPBACK_HOSTS:
            raise TrafficError(
                f"{host!r} is not a loopback address; the demo sends traffic locally"
            )
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self._connection: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _request(
        self, method: str, path: str, body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = http.client.HTTPConnection(
                    self.host, self.port, timeout=self.timeout_s
                )
            try:
                self._connection.request(method, path, body=body, headers=headers)
                response = self._connection.getresponse()
                data = response.read()
            except (ConnectionError, http.client.HTTPException, TimeoutError, OSError):
                self.close()
                if attempt == 2:
                    raise
                continue  # a kept-alive connection the server closed: one fresh try
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        raise AssertionError("unreachable")

    def predict(self, frame: pd.DataFrame, tally: Tally) -> str | None:
        """One request; returns the answering model version, or None when it failed."""
        tally.requests += 1
        try:
            status, headers, body = self._request("POST", "/invocations", payload(frame))
        except (ConnectionError, http.client.HTTPException, TimeoutError, OSError) as exc:
            _fail(tally, f"no answer: {exc}")
            return None
        if status != 200:
            _fail(tally, f"HTTP {status}: {body[:200].decode(errors='replace')}")
            return None
        predictions = json.loads(body).get("predictions")
        if not isinstance(predictions, list) or len(predictions) != len(frame):
            _fail(tally, f"{len(frame)} rows sent, answer: {body[:200]!r}")
            return None
        version = headers.get("x-model-version", "?")
        tally.rows += len(frame)
        tally.versions[version] = tally.versions.get(version, 0) + 1
        return version

    def send(self, frame: pd.DataFrame, batch_rows: int) -> Tally:
        """All of `frame`, `batch_rows` rows a request, in order."""
        tally = Tally()
        for start in range(0, len(frame), batch_rows):
            self.predict(frame.iloc[start : start + batch_rows], tally)
        return tally

    def wait_for_version(
        self,
        wanted: str,
        probe: pd.DataFrame,
        *,
        timeout_s: float,
        interval_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> Tally:
        """Predict on `probe` until `wanted` answers; raises if it does not within the time."""
        tally = Tally()
        deadline = clock() + timeout_s
        while True:
            if self.predict(probe, tally) == wanted:
                return tally
            if clock() >= deadline:
                seen = ", ".join(f"v{v} ×{n}" for v, n in tally.versions.items()) or "none"
                raise TrafficError(
                    f"the model server did not switch to version {wanted} within {timeout_s:g}s "
                    f"(answered: {seen}; {tally.failed} failed)"
                )
            time.sleep(interval_s)

    def metric(self, name: str) -> float:
        """A sample's value from /metrics (0 when absent): `name` with its labels, if any."""
        status, _, body = self._request("GET", "/metrics")
        if status != 200:
            raise TrafficError(f"GET /metrics answered HTTP {status}")
        return metric_value(body.decode(), name)

    def wait_for_metric(
        self, name: str, at_least: float, *, timeout_s: float, interval_s: float = 0.2
    ) -> float:
        deadline = time.monotonic() + timeout_s
        while (value := self.metric(name)) < at_least:
            if time.monotonic() >= deadline:
                raise TrafficError(
                    f"the model server's {name} is {value:g} after {timeout_s:g}s, "
                    f"expected at least {at_least:g}"
                )
            time.sleep(interval_s)
        return value


def metric_value(exposition: str, name: str) -> float:
    """Sum of the samples called exactly `name` in a Prometheus text exposition."""
    total = 0.0
    for line in exposition.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        sample, _, value = line.rpartition(" ")
        if sample.split("{", 1)[0] == name:
            total += float(value)
    return total


def _fail(tally: Tally, message: str) -> None:
    tally.failed += 1
    if len(tally.failures) < MAX_FAILURES_KEPT:
        tally.failures.append(message)
