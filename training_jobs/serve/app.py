"""The ASGI application: routing, limits, validation, batching, capture, health, metrics.

Raw ASGI rather than a framework: per NOTES, a bare ASGI route answers about twice as many
requests as a FastAPI one on the same machine, and the prediction route is the hot path.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from training_jobs.serve.batching import BatcherClosed, MicroBatcher
from training_jobs.serve.capture import CaptureEntry, CaptureSink, S3Put
from training_jobs.serve.inputs import Columns, InputError, parse_json, to_columns
from training_jobs.serve.metrics import ServerMetrics
from training_jobs.serve.model import PATHS, AliasWatcher, LoadedModel, ModelSource
from training_jobs.serve.settings import ServeSettings

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PREDICT_ROUTES: Final = frozenset({"/invocations", "/predict"})
_JSON: Final = (b"content-type", b"application/json")


class ServeApp:
    """One model server. `drain()` is what SIGTERM triggers; lifespan shutdown flushes."""

    def __init__(
        self,
        settings: ServeSettings,
        *,
        source: ModelSource,
        s3: S3Put | None = None,
        capture_bucket: str | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = ServerMetrics()
        self.model: LoadedModel | None = None
        self.draining = False
        self._source = source
        self._inflight = 0
        self._idle: asyncio.Event | None = None
        self._retry_after = str(settings.retry_after_s).encode()
        self._executor: ThreadPoolExecutor | None = None
        self._batcher: MicroBatcher[LoadedModel] | None = None
        self._watcher = AliasWatcher(
            source,
            poll_interval_s=settings.poll_interval_s,
            on_loaded=self._swap,
            on_failed=self._load_failed,
            on_absent=self._no_champion,
        )
        # The registry answered that no version carries the alias: a fresh platform, before
        # the first pipeline run. Ready (so a first `pulumi up` completes), answering 503.
        self.no_champion = False
        self.capture: CaptureSink | None = None
        if s3 is not None and capture_bucket and settings.capture_enabled:
            m = self.metrics
            self.capture = CaptureSink(
                s3,
                bucket=capture_bucket,
                prefix=settings.capture_prefix,
                batch_records=settings.capture_batch_records,
                flush_interval_s=settings.capture_flush_interval_s,
                max_buffered_records=settings.capture_buffer_records,
                on_dropped=lambda n, reason: m.capture_dropped.labels(reason=reason).inc(n),
                on_uploaded=m.capture_uploaded.inc,
            )
            sink = self.capture
            m.capture_buffered.set_function(lambda: sink.buffered_records)

    # -- model lifecycle -------------------------------------------------------------------

    def _swap(self, model: LoadedModel) -> None:
        previous = self.model
        self.model = model  # one reference assignment: requests see old or new, never half
        self.no_champion = False
        self.metrics.model.info({"name": model.name, "version": model.version, "path": model.path})
        self.metrics.model_version.labels(model=model.name).set(float(model.version))
        for path in PATHS:
            self.metrics.model_path.labels(path=path).set(1.0 if path == model.path else 0.0)
        self.metrics.model_swaps.labels(outcome="loaded").inc()
        log.info(
            "serving %s version %s on the %s path (was %s)%s",
            model.name,
            model.version,
            model.path,
            previous.version if previous else "none",
            f"; {model.note}" if model.note else "",
        )

    def _no_champion(self) -> None:
        if not self.no_champion and self.model is None:
            log.info(
                "no %s@%s in the registry yet; serving 503 until there is",
                self._source.name,
                self.settings.model_alias,
            )
        self.no_champion = self.model is None

    def _load_failed(self, version: str, exc: BaseException) -> None:
        self.metrics.model_swaps.labels(outcome="failed").inc()
        log.error("could not load %s version %s: %s", self._source.name, version, exc)

    def _predict(self, model: LoadedModel, parts: Sequence[Columns]) -> list[list[Any]]:
        """Runs in the predict thread."""
        results = model.predict(parts)
        m = self.metrics
        m.batch_requests.observe(len(parts))
        m.batch_rows.observe(sum(len(r) for r in results))
        observe = m.predictions.observe
        for result in results:
            for value in result:
                numeric = isinstance(value, int | float) and not isinstance(value, bool)
                if numeric and math.isfinite(value):
                    observe(value)
        return results

    # -- lifespan --------------------------------------------------------------------------

    async def startup(self) -> None:
        self._idle = asyncio.Event()
        self._idle.set()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="predict")
        self._batcher = MicroBatcher(
            self._predict,
            self._executor,
            max_rows=self.settings.batch_max_rows,
            max_wait_s=self.settings.batch_max_wait_ms / 1000,
        )
        self._batcher.start()
        if self.capture is not None:
            self.capture.start()
        self._watcher.start()

    async def drain(self, grace_s: float) -> bool:
        """Report not-ready and wait up to `grace_s` for in-flight requests; True if drained."""
        self.draining = True
        log.info("draining: %d requests in flight, grace %.1fs", self._inflight, grace_s)
        if self._idle is None or self._idle.is_set():
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), grace_s)
        except TimeoutError:
            log.warning("drain grace over with %d requests in flight", self._inflight)
            return False
        return True

    async def shutdown(self) -> None:
        self.draining = True
        await asyncio.to_thread(self._watcher.stop, 5.0)
        if self._batcher is not None:
            await self._batcher.stop()
        if self.capture is not None:
            await asyncio.to_thread(self.capture.close, 30.0)
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        log.info("shut down")

    # -- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # noqa: BLE001 - reported to the server, which exits
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        path: str = scope["path"]
        method: str = scope["method"]
        if path in PREDICT_ROUTES:
            route = path
            if method == "POST":
                status = await self._invocations(scope, receive, send)
            else:
                status = await _reply(send, 405, _error(405, "use POST"), [(b"allow", b"POST")])
        elif path in ("/health/live", "/health/ready", "/ping", "/health", "/metrics"):
            route = path
            if method not in ("GET", "HEAD"):
                status = await _reply(send, 405, _error(405, "use GET"), [(b"allow", b"GET")])
            elif path == "/health/live":
                status = await _reply(send, 200, b'{"status":"alive"}')
            elif path == "/metrics":
                status = await _reply(
                    send,
                    200,
                    generate_latest(self.metrics.registry),
                    [(b"content-type", CONTENT_TYPE_LATEST.encode())],
                )
            else:
                status = await self._ready(send)
        else:
            route = "other"  # unbounded paths must not become label values
            status = await _reply(send, 404, _error(404, f"no route {path}"))
        m = self.metrics
        code = str(status)
        m.requests.labels(route=route, status=code).inc()
        m.latency.labels(route=route, status=code).observe(time.perf_counter() - start)

    async def _ready(self, send: Send) -> int:
        model = self.model
        if self.draining:
            return await _reply(send, 503, b'{"status":"draining"}')
        if model is None and self.no_champion:
            # Nothing to load is not a broken pod: ready, so a rollout on an empty platform
            # completes; /invocations says why it cannot answer yet.
            body = orjson.dumps(
                {
                    "status": "no-model",
                    "model": self._source.name,
                    "alias": self.settings.model_alias,
                }
            )
            return await _reply(send, 200, body)
        if model is None:
            return await _reply(send, 503, b'{"status":"loading"}')
        ready = {
            "status": "ready",
            "model": model.name,
            "version": model.version,
            "path": model.path,
        }
        body = orjson.dumps(ready | ({"note": model.note} if model.note else {}))
        return await _reply(send, 200, body)

    async def _invocations(self, scope: Scope, receive: Receive, send: Send) -> int:
        model = self.model
        if model is None and self.no_champion:
            return await self._unavailable(
                send,
                f"no version of {self._source.name} is {self.settings.model_alias} yet: the "
                "retrain pipeline registers one",
            )
        if model is None:
            return await self._unavailable(send, "the model is not loaded yet")
        if self._inflight >= self.settings.max_concurrency:
            return await self._unavailable(
                send, f"overloaded: {self._inflight} requests in flight; retry later"
            )
        self._inflight += 1
        self.metrics.inflight.inc()
        if self._idle is not None:
            self._idle.clear()
        try:
            return await self._predict_request(scope, receive, send, model)
        finally:
            self._inflight -= 1
            self.metrics.inflight.dec()
            if self._inflight == 0 and self._idle is not None:
                self._idle.set()

    async def _unavailable(self, send: Send, message: str) -> int:
        return await _reply(send, 503, _error(503, message), [(b"retry-after", self._retry_after)])

    async def _predict_request(
        self, scope: Scope, receive: Receive, send: Send, model: LoadedModel
    ) -> int:
        headers = dict(scope["headers"])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1") or uuid.uuid4().hex
        extra = [(b"x-request-id", request_id.encode("latin-1"))]
        try:
            body = await self._read_body(headers, receive)
            if body is None:
                return 499  # the client went away; nothing to answer
            parsed = to_columns(parse_json(body), model.schema)
        except InputError as exc:
            return await _reply(send, exc.status, exc.to_json(), extra)
        assert self._batcher is not None
        try:
            predictions = await self._batcher.submit(model, parsed.columns, parsed.n_rows)
        except BatcherClosed:
            return await self._unavailable(send, "the server is shutting down")
        except Exception:
            log.exception("predict failed for request %s", request_id)
            return await _reply(send, 500, _error(500, "prediction failed"), extra)
        if self.capture is not None:
            self.capture.offer(
                CaptureEntry(
                    datetime.now(UTC),
                    request_id,
                    model.name,
                    model.version,
                    parsed.columns,
                    predictions,
                    parsed.n_rows,
                )
            )
        extra.append((b"x-model-name", model.name.encode()))
        extra.append((b"x-model-version", model.version.encode()))
        extra.append((b"x-model-path", model.path.encode()))
        payload = orjson.dumps({"predictions": predictions}, option=orjson.OPT_SERIALIZE_NUMPY)
        return await _reply(send, 200, payload, extra)

    async def _read_body(self, headers: dict[bytes, bytes], receive: Receive) -> bytes | None:
        limit = self.settings.max_body_bytes
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                raise InputError(400, f"invalid Content-Length {length.decode('latin-1')!r}")
            if int(length) > limit:
                raise InputError(
                    413, f"body of {int(length)} bytes exceeds the limit of {limit} bytes"
                )
        ctype = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
        if ctype != b"application/json":
            raise InputError(
                415,
                f"content type {ctype.decode('latin-1') or '(none)'!r} is not supported; "
                "send application/json",
            )
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise InputError(413, f"body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _error(status: int, message: str) -> bytes:
    return InputError(status, message).to_json()


async def _reply(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> int:
    out = [_JSON, (b"content-length", str(len(body)).encode())]
    if headers:
        if any(k == b"content-type" for k, _ in headers):
            out = out[1:]
        out.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})
    return status
