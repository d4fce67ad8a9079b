"""A tiny deterministic scheduler for workflow coroutines (instead of asyncio's event loop).

Workflow code awaits `Future`s only. Stepping a coroutine (`send` / `throw`) runs it to its next
await of an unresolved Future, where it blocks until the driver resolves that Future from
history. Ready tasks run in FIFO order, so the same inputs always give the same interleaving.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Future(Generic[T]):
    """A result the workflow awaits; the driver resolves it when history provides it."""

    __slots__ = ("_callbacks", "_done", "_error", "_scheduler", "_value", "_waiters", "on_abandon")

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler
        self._done = False
        self._value: Any = None
        self._error: BaseException | None = None
        self._waiters: list[Task] = []
        self._callbacks: list[Callable[[Future[T]], None]] = []
        self.on_abandon: Callable[[], None] | None = None
        """Called when the last task waiting on this future is cancelled (e.g. cancel a timer)."""

    @property
    def done(self) -> bool:
        return self._done

    @property
    def error(self) -> BaseException | None:
        return self._error

    @property
    def value(self) -> T:
        return self._value  # type: ignore[no-any-return]

    def resolve(self, value: T) -> None:
        if not self._done:
            self._done, self._value = True, value
            self._wake()

    def fail(self, error: BaseException) -> None:
        if not self._done:
            self._done, self._error = True, error
            self._wake()

    def add_callback(self, callback: Callable[[Future[T]], None]) -> None:
        if self._done:
            callback(self)
        else:
            self._callbacks.append(callback)

    def _wake(self) -> None:
        for task in self._waiters:
            task.waiting_on = None
            self._scheduler.make_ready(task)
        self._waiters.clear()
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)

    def __await__(self) -> Generator[Any, None, T]:
        if not self._done:
            yield self
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[no-any-return]


class Task:
    """One coroutine of a workflow: the main one, or a child started by gather()."""

    __slots__ = ("coro", "result", "throw", "waiting_on")

    def __init__(self, coro: Coroutine[Any, Any, Any], result: Future[Any]) -> None:
        self.coro = coro
        self.result = result
        self.waiting_on: Future[Any] | None = None
        self.throw: BaseException | None = None


class Scheduler:
    """Runs ready tasks until every task is blocked on an unresolved Future or done."""

    def __init__(self) -> None:
        self._ready: deque[Task] = deque()
        self.fatal: BaseException | None = None
        """Set by the driver when the run must stop whatever the code does (nondeterminism)."""

    def create_future(self) -> Future[Any]:
        return Future(self)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> Task:
        task = Task(coro, Future(self))
        self._ready.append(task)
        return task

    def make_ready(self, task: Task) -> None:
        self._ready.append(task)

    def run_until_blocked(self) -> None:
        while self._ready:
            self._step(self._ready.popleft())
            if self.fatal is not None:
                raise self.fatal

    def _step(self, task: Task) -> None:
        try:
            if task.throw is not None:
                error, task.throw = task.throw, None
                yielded = task.coro.throw(error)
            else:
                yielded = task.coro.send(None)
        except StopIteration as stop:
            task.result.resolve(stop.value)
            return
        except BaseException as error:  # noqa: BLE001 - every outcome of user code is classified
            task.result.fail(error)
            return
        if not isinstance(yielded, Future):
            task.coro.close()
            task.result.fail(
                TypeError(
                    f"workflow code awaited {yielded!r}, which is not a sagaflow awaitable; "
                    "use ctx.sleep / ctx.execute_activity / ctx.gather, never asyncio"
                )
            )
        elif yielded.done:
            self._ready.append(task)
        else:
            task.waiting_on = yielded
            yielded._waiters.append(task)

    def cancel(self, task: Task, error: BaseException) -> None:
        """Throw `error` into `task` at its await (into its gather children, if that is what it
        awaits: their failure then reaches the task through gather)."""
        future = task.waiting_on
        if future is None:
            return
        children = future.children if isinstance(future, GatherFuture) else ()
        live_children = [c for c in children if not c.result.done]
        if live_children:
            for child in live_children:
                self.cancel(child, error)
            return
        future._waiters.remove(task)
        task.waiting_on = None
        if not future._waiters and future.on_abandon is not None:
            future.on_abandon()
        task.throw = error
        self._ready.append(task)

    def gather(
        self,
        awaitables: tuple[Awaitable[Any], ...],
        *,
        cancel_siblings: BaseException | None = None,
    ) -> Future[list[Any]]:
        """A Future of the list of results, failing with the first failure.

        With `cancel_siblings`, the first failure throws that error into every other child
        still running, and the Future fails (with the first failure) once all have finished.
        """
        children = tuple(self.spawn(_as_coroutine(a)) for a in awaitables)
        result = GatherFuture(self, children)
        first_failure: list[BaseException] = []

        def child_done(_: Future[Any]) -> None:
            if result.done:
                return
            if cancel_siblings is not None:
                if not first_failure:
                    failed = [c.result.error for c in children if c.result.error is not None]
                    if failed:
                        first_failure.append(failed[0])
                        for child in children:
                            if not child.result.done:
                                self._cancel_child(child, cancel_siblings)
                if first_failure:
                    if all(child.result.done for child in children):
                        result.fail(first_failure[0])
                    return
            for child in children:
                if child.result.error is not None:
                    result.fail(child.result.error)
                    return
            if all(child.result.done for child in children):
                result.resolve([child.result.value for child in children])

        if not children:
            result.resolve([])
        for child in children:
            child.result.add_callback(child_done)
        return result

    def _cancel_child(self, task: Task, error: BaseException) -> None:
        if task.waiting_on is None:
            # Ready to run (not yet started, or woken in this same step): it gets the error at
            # the await it resumes from.
            if task.throw is None:
                task.throw = error
            return
        self.cancel(task, error)


class GatherFuture(Future[list[Any]]):
    """The Future of gather(); cancelling a task awaiting it cancels its children instead."""

    __slots__ = ("children",)

    def __init__(self, scheduler: Scheduler, children: tuple[Task, ...]) -> None:
        super().__init__(scheduler)
        self.children = children


def _as_coroutine(awaitable: Awaitable[Any]) -> Coroutine[Any, Any, Any]:
    if isinstance(awaitable, Coroutine):
        return awaitable

    async def wait() -> Any:
        return await awaitable

    return wait()
