"""Entrypoint: settings → clients → the ASGI app under uvicorn, with a SIGTERM drain.

On SIGTERM (or Ctrl+C) readiness turns 503 at once while requests keep being served; when
none is in flight, or `drain_grace_s` has passed, uvicorn stops, the lifespan shutdown
flushes the capture buffer, and the process exits 0. A second signal stops immediately.
In Kubernetes, pair it with a short `preStop` sleep so endpoints update before the drain.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any

import orjson
import uvicorn
from pydantic import ValidationError

from training_jobs import platform
from training_jobs.common import environment_region
from training_jobs.serve.app import ServeApp
from training_jobs.serve.capture import S3Put
from training_jobs.serve.model import ModelSource
from training_jobs.serve.settings import ServeSettings

log = logging.getLogger("training_jobs.serve")


class DrainingServer(uvicorn.Server):
    """uvicorn, but the first signal drains before stopping (and the exit code stays 0)."""

    def __init__(self, config: uvicorn.Config, app: ServeApp, grace_s: float) -> None:
        super().__init__(config)
        self._app = app
        self._grace_s = grace_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_task: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain_task is not None or self._loop is None:
            self.should_exit = True
            self.force_exit = self.force_exit or sig == signal.SIGINT
            return
        log.info("received %s", signal.Signals(sig).name)
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        if self._drain_task is None:
            self._drain_task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        started = time.monotonic()
        await self._app.drain(self._grace_s)
        # Connections that opened after the last request still get the rest of the grace.
        self.config.timeout_graceful_shutdown = max(
            1, int(self._grace_s - (time.monotonic() - started))
        )
        self.should_exit = True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def platform_outputs(settings: ServeSettings) -> platform.PlatformOutputs | None:
    if settings.stack_outputs is None:
        return None
    return platform.load_outputs(settings.stack_outputs)


def capture_target(
    settings: ServeSettings, outputs: platform.PlatformOutputs | None
) -> tuple[str | None, str | None]:
    """(bucket, region) for captures: the explicit setting wins over the stack outputs."""
    if not settings.capture_enabled:
        return None, None
    if settings.capture_bucket:
        return settings.capture_bucket, outputs.region if outputs else environment_region()
    if outputs is not None:
        return outputs.captures_bucket, outputs.region
    return None, None


def run(
    settings: ServeSettings,
    *,
    source: ModelSource,
    s3: S3Put | None,
    capture_bucket: str | None,
) -> int:
    """Serve until a signal; returns the process exit code."""
    app = ServeApp(settings, source=source, s3=s3, capture_bucket=capture_bucket)
    if app.capture is None:
        log.info("inference capture is off (no capture bucket)")
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        access_log=False,  # request metrics replace access logs on the hot path
        log_config=None,
        timeout_graceful_shutdown=max(1, int(settings.drain_grace_s)),
    )
    DrainingServer(config, app, settings.drain_grace_s).run()
    return 0


def _describe(error: Any) -> str:
    """`--model-name / MLOPS_SERVE_MODEL_NAME = 'x': <what is wrong>`: flag, value, rule."""
    field = ".".join(str(p) for p in error["loc"])
    if not field:
        return str(error["msg"])
    where = f"--{field.replace('_', '-')} / MLOPS_SERVE_{field.upper()}"
    given = "" if error["type"] == "missing" else f" = {error.get('input')!r}"
    return f"{where}{given}: {error['msg']}"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = ServeSettings(_cli_parse_args=list(sys.argv[1:] if argv is None else argv))
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        print(f"serve: invalid settings: {problems}", file=sys.stderr)  # noqa: T201
        return 2
    configure_logging(settings.log_level)
    try:
        outputs = platform_outputs(settings)
    except platform.PlatformError as exc:
        log.error("%s", exc)
        return 2
    bucket, region = capture_target(settings, outputs)
    from training_jobs.serve.model import MlflowModelSource

    source = MlflowModelSource(
        settings.model_name,
        settings.model_alias,
        tracking_uri=settings.tracking_uri or (outputs.tracking_uri if outputs else None),
        registry_uri=settings.registry_uri,
        prefer_compiled=settings.prefer_compiled,
    )
    s3: S3Put | None = None
    if bucket:
        import boto3

        s3 = boto3.client("s3", region_name=region)
    return run(settings, source=source, s3=s3, capture_bucket=bucket)
