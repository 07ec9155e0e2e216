"""Prometheus metrics of one server instance, in its own registry."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from training_jobs import contract

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_PREDICTION_BUCKETS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class ServerMetrics:
    def __init__(self, buffered_records: Callable[[], float] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            contract.SERVE_METRIC_REQUESTS,
            "HTTP requests answered.",
            ["route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            contract.SERVE_METRIC_LATENCY,
            "Time from request start to the last response byte.",
            ["route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Histogram(
            contract.SERVE_METRIC_PREDICTION,
            "Distribution of numeric predictions.",
            buckets=_PREDICTION_BUCKETS,
            registry=r,
        )
        self.batch_rows = Histogram(
            "mlops_serve_batch_rows", "Rows per predict call.", buckets=_BATCH_BUCKETS, registry=r
        )
        self.batch_requests = Histogram(
            "mlops_serve_batch_requests",
            "Requests merged into one predict call.",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.model = Info("mlops_serve_model", "The model version being served.", registry=r)
        self.model_version = Gauge(
            contract.SERVE_METRIC_MODEL_VERSION,
            "Registry version being served.",
            ["model"],
            registry=r,
        )
        self.model_path = Gauge(
            contract.SERVE_METRIC_MODEL_PATH,
            "The path serving predictions: compiled (ONNX Runtime) or pyfunc (1 = in use).",
            ["path"],
            registry=r,
        )
        self.model_swaps = Counter(
            "mlops_serve_model_loads", "Model versions loaded.", ["outcome"], registry=r
        )
        self.capture_dropped = Counter(
            "mlops_serve_capture_dropped_records",
            "Captured records dropped instead of uploaded.",
            ["reason"],
            registry=r,
        )
        self.capture_uploaded = Counter(
            "mlops_serve_capture_uploaded_records", "Captured records uploaded.", registry=r
        )
        self.capture_buffered = Gauge(
            "mlops_serve_capture_buffered_records", "Records waiting for upload.", registry=r
        )
        if buffered_records is not None:
            self.capture_buffered.set_function(buffered_records)
        self.inflight = Gauge(
            "mlops_serve_inflight_requests", "Prediction requests in flight.", registry=r
        )
        for reason in ("buffer_full", "upload_failed"):
            self.capture_dropped.labels(reason=reason)
