"""Moving the alias swaps the served version under load, without a failed request."""

from __future__ import annotations

import threading

from tests.serve.serve_helpers import (
    Registry,
    eventually,
    rows_payload,
    serve_in_thread,
    settings,
    train_and_register,
)
from training_jobs.serve.model import AliasWatcher, LoadedModel


def test_alias_move_swaps_versions_under_concurrent_load_with_zero_failures(
    registry: Registry,
) -> None:
    name = "churn-swap"
    assert train_and_register(registry.tracking_uri, name, seed=1) == "1"
    config = settings(registry, model_name=name, poll_interval_s=0.2)
    results: list[list[tuple[int, str]]] = [[] for _ in range(4)]
    stop = threading.Event()

    with serve_in_thread(config) as running:

        def load(out: list[tuple[int, str]], offset: int) -> None:
            with running.client() as c:
                i = offset
                while not stop.is_set():
                    rows = registry.rows.iloc[i % 150 : i % 150 + 1 + i % 5]
                    r = c.post("/invocations", json=rows_payload(rows))
                    out.append((r.status_code, r.headers.get("x-model-version", "")))
                    i += 7

        threads = [threading.Thread(target=load, args=(out, k)) for k, out in enumerate(results)]
        for t in threads:
            t.start()
        try:
            eventually(lambda: all(len(out) >= 5 for out in results), "load running on version 1")
            assert train_and_register(registry.tracking_uri, name, seed=2, c=0.1) == "2"

            def served_by_v2_for_a_while() -> bool:
                return all(sum(v == "2" for _, v in out) >= 10 for out in results)

            eventually(served_by_v2_for_a_while, "every client served by version 2")
        finally:
            stop.set()
            for t in threads:
                t.join()
        with running.client() as c:
            metrics = c.get("/metrics").text

    everything = [item for out in results for item in out]
    assert {status for status, _ in everything} == {200}, "a request failed during the swap"
    for out in results:
        versions = [v for _, v in out]
        first_v2 = versions.index("2")
        assert set(versions[:first_v2]) == {"1"} and set(versions[first_v2:]) == {"2"}
    assert f'mlops_serve_model_info{{name="{name}",path="pyfunc",version="2"}} 1.0' in metrics
    assert 'mlops_serve_model_loads_total{outcome="loaded"} 2.0' in metrics


class _FlakySource:
    name = "m"

    def __init__(self) -> None:
        self.version = "1"
        self.fail = False

    def resolve(self) -> str:
        if self.fail:
            raise ConnectionError("registry down")
        return self.version

    def load(self, version: str) -> LoadedModel:
        if version == "3":
            raise RuntimeError("broken artifact")
        return LoadedModel("m", version, None, None)  # type: ignore[arg-type]


def test_watcher_keeps_the_current_version_when_the_registry_or_a_load_fails() -> None:
    source, loaded, failed = _FlakySource(), [], []
    watcher = AliasWatcher(
        source,
        poll_interval_s=3_600,
        on_loaded=lambda m: loaded.append(m.version),
        on_failed=lambda v, e: failed.append((v, str(e))),
    )
    watcher.poll_once()
    watcher.poll_once()  # unchanged alias: no reload
    source.fail = True
    watcher.poll_once()
    source.fail, source.version = False, "3"
    watcher.poll_once()
    source.version = "4"
    watcher.poll_once()
    assert loaded == ["1", "4"]
    assert failed == [("?", "registry down"), ("3", "broken artifact")]


def test_an_unreachable_registry_at_start_is_asked_again_soon_not_after_the_poll_interval() -> None:
    """MLflow starting beside the server (a fresh cluster): the first version loads
    within seconds of the registry answering, although the poll interval is an hour."""
    source, loaded, failed = _FlakySource(), [], []
    source.fail = True
    watcher = AliasWatcher(
        source,
        poll_interval_s=3_600,
        on_loaded=lambda m: loaded.append(m.version),
        on_failed=lambda v, e: failed.append(v),
    )
    watcher.start()
    try:
        eventually(lambda: len(failed) >= 2, "two quick retries", timeout_s=30)
        source.fail = False
        eventually(lambda: loaded == ["1"], "the first version loaded", timeout_s=30)
    finally:
        watcher.stop(timeout_s=5)
