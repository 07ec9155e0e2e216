"""Micro-batching: bounded rows, one version per batch, callers get their own rows back."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.serve.serve_helpers import EVENTUALLY_S
from training_jobs.serve.batching import BatcherClosed, MicroBatcher
from training_jobs.serve.inputs import Columns


class _Recorder:
    def __init__(self) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, model: str, parts: Sequence[Columns]) -> list[list[Any]]:
        self.entered.set()
        assert self.gate.wait(EVENTUALLY_S), "the test never let the prediction finish"
        self.batches.append((model, [v for p in parts for v in p["x"]]))
        return [[f"{model}:{v}" for v in p["x"]] for p in parts]


def test_concurrent_requests_share_calls_up_to_max_rows() -> None:
    predict = _Recorder()

    async def scenario() -> list[list[Any]]:
        with ThreadPoolExecutor(1) as pool:
            batcher: MicroBatcher[str] = MicroBatcher(predict, pool, max_rows=3, max_wait_s=60)
            batcher.start()
            results = await asyncio.gather(*(batcher.submit("m", {"x": [i]}, 1) for i in range(6)))
            await batcher.stop()
            return list(results)

    results = asyncio.run(scenario())
    assert results == [[f"m:{i}"] for i in range(6)]
    assert [rows for _, rows in predict.batches] == [[0, 1, 2], [3, 4, 5]]


def test_requests_for_different_versions_never_share_a_call() -> None:
    predict = _Recorder()
    predict.gate.clear()

    async def scenario() -> list[list[Any]]:
        with ThreadPoolExecutor(1) as pool:
            batcher: MicroBatcher[str] = MicroBatcher(predict, pool, max_rows=100)
            batcher.start()
            first = asyncio.ensure_future(batcher.submit("v1", {"x": [0]}, 1))
            # The first call is running, and stuck.
            await asyncio.wait_for(asyncio.to_thread(predict.entered.wait), EVENTUALLY_S)
            rest = [
                asyncio.ensure_future(batcher.submit(model, {"x": [i]}, 1))
                for i, model in enumerate(["v1", "v1", "v2", "v2", "v1"], start=1)
            ]
            await asyncio.sleep(0)
            predict.gate.set()
            results = await asyncio.gather(first, *rest)
            await batcher.stop()
            return list(results)

    results = asyncio.run(scenario())
    assert results == [["v1:0"], ["v1:1"], ["v1:2"], ["v2:3"], ["v2:4"], ["v1:5"]]
    assert predict.batches == [("v1", [0]), ("v1", [1, 2]), ("v2", [3, 4]), ("v1", [5])]


def test_a_stopped_batcher_refuses_work() -> None:
    async def scenario() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher: MicroBatcher[str] = MicroBatcher(_Recorder(), pool, max_rows=10)
            batcher.start()
            await batcher.stop()
            try:
                await batcher.submit("m", {"x": [1]}, 1)
            except BatcherClosed:
                return
            raise AssertionError("submit after stop was accepted")

    asyncio.run(scenario())
