"""Micro-batching: concurrent requests share one predict call.

The model's per-call overhead (pandas, ColumnTransformer) dwarfs its per-row cost, so the
batcher takes everything that queued while the previous call ran (up to `max_rows`, waiting
at most `max_wait_s` for more) and runs one call in a single worker thread, off the event
loop. Requests validated against different model versions never share a batch, which is
what makes a hot swap safe: a request is answered by the version that validated it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from training_jobs.serve.inputs import Columns

M = TypeVar("M")

# (model, the requests' columns) → one prediction list per request.
PredictFn = Callable[[M, Sequence[Columns]], list[list[Any]]]


@dataclass
class Pending(Generic[M]):
    model: M
    columns: Columns
    n_rows: int
    future: asyncio.Future[list[Any]] = field(repr=False)


class BatcherClosed(Exception):
    """The batcher stopped before this request was predicted."""


class MicroBatcher(Generic[M]):
    def __init__(
        self,
        predict: PredictFn[M],
        executor: Executor,
        *,
        max_rows: int,
        max_wait_s: float = 0.0,
    ) -> None:
        self._predict = predict
        self._executor = executor
        self._max_rows = max_rows
        self._max_wait_s = max_wait_s
        self._queue: asyncio.Queue[Pending[M]] = asyncio.Queue()
        self._carry: Pending[M] | None = None
        self._task: asyncio.Task[None] | None = None
        self._busy = False
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        """Finish the batch in progress; fail what is still queued."""
        self._closing = True
        if self._task is not None:
            if not self._busy:
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        leftovers = [self._carry] if self._carry else []
        self._carry = None
        while not self._queue.empty():
            leftovers.append(self._queue.get_nowait())
        for item in leftovers:
            if not item.future.done():
                item.future.set_exception(BatcherClosed())

    async def submit(self, model: M, columns: Columns, n_rows: int) -> list[Any]:
        if self._task is None or self._closing:
            raise BatcherClosed()
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(Pending(model, columns, n_rows, future))
        return await future

    async def _next(self, timeout: float | None) -> Pending[M] | None:
        if self._carry is not None:
            item, self._carry = self._carry, None
            return item
        if not self._queue.empty():
            return self._queue.get_nowait()
        if timeout is None:
            return await self._queue.get()
        if timeout <= 0:
            return None
        # Not wait_for: on 3.11 it can drop an item that arrives as the timeout fires.
        getter = asyncio.ensure_future(self._queue.get())
        done, _ = await asyncio.wait({getter}, timeout=timeout)
        if getter in done:
            return getter.result()
        getter.cancel()
        try:
            return await getter  # completed between the timeout and the cancel
        except asyncio.CancelledError:
            return None

    async def _collect(self) -> list[Pending[M]]:
        loop = asyncio.get_running_loop()
        first = await self._next(None)
        assert first is not None
        batch, rows = [first], first.n_rows
        deadline = loop.time() + self._max_wait_s
        while rows < self._max_rows:
            item = await self._next(deadline - loop.time())
            if item is None:
                break
            if item.model is not first.model or rows + item.n_rows > self._max_rows:
                self._carry = item
                break
            batch.append(item)
            rows += item.n_rows
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closing:
            batch = await self._collect()
            live = [p for p in batch if not p.future.done()]  # skip callers that went away
            if not live:
                continue
            model = live[0].model
            self._busy = True
            try:
                results = await loop.run_in_executor(
                    self._executor, self._predict, model, [p.columns for p in live]
                )
            except asyncio.CancelledError:
                for p in live:
                    if not p.future.done():
                        p.future.set_exception(BatcherClosed())
                raise
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                for p in live:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            finally:
                self._busy = False
            for p, result in zip(live, results, strict=True):
                if not p.future.done():
                    p.future.set_result(result)
