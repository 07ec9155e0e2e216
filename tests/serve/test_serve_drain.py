"""SIGTERM: readiness goes 503, the in-flight request completes, captures flush, exit 0."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import orjson
import pytest
from moto.server import ThreadedMotoServer

from mlops_local.processes import UVICORN_PORT, reported_port
from tests.serve.serve_helpers import (
    RawRequest,
    Registry,
    eventually,
    rows_payload,
    start_subprocess,
)

BUCKET = "captures-drain"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        yield "http://{}:{}".format(*server.get_host_and_port())
    finally:
        server.stop()


@pytest.mark.e2e
def test_sigterm_drains_in_flight_requests_flushes_captures_and_exits_zero(
    registry: Registry, moto_url: str, tmp_path: Path
) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket=BUCKET)
    log = tmp_path / "server.log"
    proc = start_subprocess(
        {
            **CREDENTIALS,
            "AWS_ENDPOINT_URL": moto_url,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLOPS_SERVE_MODEL_NAME": registry.model_name,
            "MLOPS_SERVE_TRACKING_URI": registry.tracking_uri,
            "MLOPS_SERVE_PORT": "0",  # it binds a free port and names it in its log
            "MLOPS_SERVE_CAPTURE_BUCKET": BUCKET,
            "MLOPS_SERVE_CAPTURE_BATCH_RECORDS": "1000",
            "MLOPS_SERVE_CAPTURE_FLUSH_INTERVAL_S": "3600",
            "MLOPS_SERVE_DRAIN_GRACE_S": "120",
        },
        log,
    )
    held: RawRequest | None = None
    try:
        port = reported_port(
            log, UVICORN_PORT, name="model server", running=lambda: proc.poll() is None,
            timeout_s=120,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        body = orjson.dumps(rows_payload(registry.rows.head(3)))
        with httpx.Client(base_url=url, timeout=60) as c:

            def ready() -> bool:
                assert proc.poll() is None, log.read_text()
                try:
                    return c.get("/health/ready").status_code == 200
                except httpx.TransportError:
                    return False

            eventually(ready, "subprocess ready")
            first = c.post(
                "/invocations", content=body, headers={"content-type": "application/json"}
            )
            assert first.status_code == 200
            held = RawRequest(port, body)  # in flight: headers and half the body sent
            eventually(
                lambda: "mlops_serve_inflight_requests 1.0" in c.get("/metrics").text,
                "the held request counted in flight",
            )
            proc.send_signal(signal.SIGTERM)
            eventually(
                lambda: c.get("/health/ready").status_code == 503, "readiness 503 while draining"
            )
            assert c.get("/health/ready").json() == {"status": "draining"}
            assert c.get("/health/live").status_code == 200
        status, reply = held.finish()
        assert status == 200
        assert orjson.loads(reply)["predictions"] == first.json()["predictions"]
        assert proc.wait(timeout=120) == 0, log.read_text()
    finally:
        if held is not None:
            held.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert len(keys) == 1, keys
    lines = s3.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read().splitlines()
    assert len(lines) == 6  # both requests' three rows, flushed at shutdown
    assert "draining" in log.read_text()


def test_bad_settings_exit_2_with_the_setting_named(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "training_jobs.serve", "--model-name", "m", "--batch-max-rows", "0"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "python -m training_jobs.serve: error: --batch-max-rows / MLOPS_SERVE_BATCH_MAX_ROWS: "
        "'0' is not allowed: Input should be greater than 0\n"
    )
