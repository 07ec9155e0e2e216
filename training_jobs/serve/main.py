"""Entrypoint: settings → clients → the ASGI app under uvicorn, with a SIGTERM drain.

`main` runs in the jobs' frame (`training_jobs.common.run_job`), as a service: its body
returns when the server has stopped. It refuses to start without an MLflow server
(`MLOPS_SERVE_TRACKING_URI`, `MLOPS_TRACKING_URI`, the stack outputs or
MLFLOW_TRACKING_URI): MLflow's own fallback, an empty `./mlruns`, would serve nothing.

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
import time
from collections.abc import Sequence
from types import FrameType

import uvicorn

from training_jobs import contract
from training_jobs.common import (
    StepLogger,
    aws_client,
    configure_logging,
    find_bucket,
    run_job,
    tracking_uri,
)
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


def capture_target(settings: ServeSettings) -> str | None:
    """The captures bucket: the explicit setting wins over the stack outputs; neither (or
    capture turned off), and the server serves without capturing."""
    if not settings.capture_enabled:
        return None
    return find_bucket(settings, contract.BUCKET_CAPTURES)


def run(
    settings: ServeSettings,
    *,
    source: ModelSource,
    s3: S3Put | None,
    capture_bucket: str | None,
) -> None:
    """Serve until a signal (drained, or stopped by a second one)."""
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


def main(argv: Sequence[str] | None = None) -> int:
    """Settings → clients → uvicorn, in the jobs' frame: a bad setting, a missing tracking
    URI or stack outputs file is one line on stderr and exit 2 before anything starts."""

    def body(settings: ServeSettings, on_step: StepLogger) -> None:
        from training_jobs.serve.model import MlflowModelSource

        uri = tracking_uri(settings)
        bucket = capture_target(settings)
        # Only once the settings hold: the server's and uvicorn's records as JSON lines.
        configure_logging(contract.MODULE_SERVE, settings.log_level)
        source = MlflowModelSource(
            settings.model_name,
            settings.model_alias,
            tracking_uri=uri,
            registry_uri=settings.registry_uri,
            prefer_compiled=settings.prefer_compiled,
        )
        s3: S3Put | None = aws_client("s3", settings) if bucket else None
        on_step(
            "serve",
            model=settings.model_name,
            alias=settings.model_alias,
            tracking_uri=uri,
            capture_bucket=bucket,
            host=settings.host,
            port=settings.port,
        )
        run(settings, source=source, s3=s3, capture_bucket=bucket)

    return run_job(contract.MODULE_SERVE, ServeSettings, body, argv)
