"""Off-the-request-path delivery for HTTP backends: a bounded queue, a batching thread, retries."""

from __future__ import annotations

import atexit
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal, get_args

from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured
from django.urls import NoReverseMatch, reverse

from ..exceptions import PublishError
from ..history import HistoryStore, Position, Positions, Replay
from ..messages import Message
from .base import BaseBackend
from .dispatch_metrics import DispatchMetrics

__all__ = ["Call", "DispatchOptions", "Dispatcher", "DispatchingBackend"]

logger = logging.getLogger("rtbridge.backends")

Mode = Literal["background", "sync"]
WhenFull = Literal["block", "drop"]

#: Every live dispatcher, so one ``atexit`` hook can flush them all without keeping them alive.
_LIVE: weakref.WeakSet[Dispatcher] = weakref.WeakSet()


@atexit.register
def _flush_all_at_exit() -> None:
    for dispatcher in list(_LIVE):
        dispatcher.close()


@dataclass(frozen=True, slots=True)
class Call:
    """One unit of vendor work: ``send()`` performs it, or raises ``PublishError``.

    ``messages`` is how many messages it carries (for the counters), ``label`` names it in logs.
    A call that sends several requests in sequence and resumes where it failed when retried
    reports what is still unsent through ``unsent()``.
    """

    send: Callable[[], object]
    messages: int
    label: str
    unsent: Callable[[], int] | None = None

    def failed(self) -> int:
        """Return how many of its messages are not delivered (after the last attempt)."""
        return self.messages if self.unsent is None else self.unsent()


@dataclass(frozen=True, slots=True)
class DispatchOptions:
    """How a :class:`DispatchingBackend` delivers: its options in ``RTBRIDGE_OPTIONS``.

    Documented in ``docs/backends.md``; :class:`Dispatcher` explains what each one does.
    Numbers are checked by their annotation: ``float`` options are seconds > 0, ``int``
    options whole numbers >= 1.
    """

    mode: Mode = "background"
    batch_window: float = 0.005
    max_batch: int = 100
    queue_size: int = 10_000
    when_full: WhenFull = "block"
    block_timeout: float = 1.0
    max_attempts: int = 4
    retry_backoff: float = 0.1
    shutdown_timeout: float = 5.0

    def check(self, backend: str) -> None:
        """Raise ``ImproperlyConfigured`` naming ``backend``'s first invalid option."""
        if self.mode not in get_args(Mode):
            raise ImproperlyConfigured(
                f"{backend} option mode={self.mode!r} is not valid; use 'background' (the "
                "default: publish queues and returns) or 'sync' (publish sends and raises on "
                "failure)."
            )
        if self.when_full not in get_args(WhenFull):
            raise ImproperlyConfigured(
                f"{backend} option when_full={self.when_full!r} is not valid; use 'block' (wait "
                "up to block_timeout for room) or 'drop' (drop and count at once)."
            )
        for option in fields(self):
            value = getattr(self, option.name)
            if option.type in (float, "float") and not _is_positive_number(value):
                raise ImproperlyConfigured(
                    f"{backend} option {option.name}={value!r} is not valid; give a number of "
                    "seconds > 0."
                )
            if option.type in (int, "int") and not _is_whole_number(value):
                raise ImproperlyConfigured(
                    f"{backend} option {option.name}={value!r} is not valid; give a whole number "
                    ">= 1."
                )


#: The option names :class:`DispatchingBackend` takes for its :class:`DispatchOptions`.
DISPATCH_OPTION_NAMES = tuple(option.name for option in fields(DispatchOptions))


def _is_positive_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _is_whole_number(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


class Dispatcher:
    """Deliver messages through ``build_calls`` from a daemon thread, or inline in ``sync`` mode.

    In ``background`` mode :meth:`submit` only appends to a bounded queue. The thread takes
    everything that arrives within ``batch_window`` seconds (at most ``max_batch`` messages),
    turns it into calls with ``build_calls`` and performs them in order (``concurrency`` > 1
    runs them on a thread pool). A call that fails with a retryable ``PublishError`` (5xx,
    timeout, connection refused) is tried up to ``max_attempts`` times with exponential backoff
    starting at ``retry_backoff`` seconds (capped at ``max_backoff``, with jitter); others fail
    at once. Failures and queue overflows are counted and logged once per burst.
    ``housekeeping`` (if given) runs in the same thread every ``housekeeping_interval`` seconds;
    ``thread_exit`` (if given) runs in it when it stops (to release what the thread opened).
    """

    def __init__(
        self,
        name: str,
        build_calls: Callable[[list[Message]], list[Call]],
        options: DispatchOptions | None = None,
        *,
        max_backoff: float = 2.0,
        concurrency: int = 1,
        housekeeping: Callable[[], None] | None = None,
        housekeeping_interval: float = 30.0,
        thread_exit: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.thread_exit = thread_exit
        self.build_calls = build_calls
        self.options = options or DispatchOptions()
        self.max_backoff = max_backoff
        self.concurrency = concurrency
        self.housekeeping = housekeeping
        self.housekeeping_interval = housekeeping_interval
        #: Messages delivered, failed after retries, and dropped because the queue was full.
        self.sent_count = 0
        self.failed_count = 0
        self.dropped_count = 0
        #: Vendor requests attempted (retries included) and batches taken from the queue.
        self.calls_count = 0
        self.batches_count = 0
        #: The last delivery error seen in background mode (for operators and tests).
        self.last_error: PublishError | None = None
        #: The same counts for Prometheus (see dispatch_metrics; docs/server.md, Metrics).
        self.metrics = DispatchMetrics(name)
        self._reset_state()

    def _reset_state(self) -> None:
        # Also run in a forked child: the parent's thread, lock and queue are not ours there.
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._has_items = threading.Condition(self._lock)
        self._has_room = threading.Condition(self._lock)
        self._all_done = threading.Condition(self._lock)
        self._queue: deque[Message] = deque()
        self._pending = 0  # queued or being sent
        self._hurry = 0  # flushes waiting: skip the batch window
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._dropping = _Burst()  # queue overflows
        self._failing = _Burst()  # delivery failures
        self._housekeeping_failing = _Burst()
        self._next_housekeeping = time.monotonic() + self.housekeeping_interval

    def set_housekeeping(self, task: Callable[[], None] | None, interval: float) -> None:
        """Run ``task`` every ``interval`` seconds: in the thread, or inline in sync mode."""
        self.housekeeping = task
        self.housekeeping_interval = interval
        self._next_housekeeping = time.monotonic() + interval

    # Request side -------------------------------------------------------------------------

    def submit(self, messages: list[Message]) -> None:
        """Queue ``messages`` (background) or deliver them now and raise on failure (sync)."""
        if self.options.mode == "sync":
            error = self.deliver(messages, count_failures=False)
            self._run_housekeeping_if_due()
            if error is not None:
                raise error
            return
        if not self.try_submit(messages):
            self._submit_blocking(messages)

    def try_submit(self, messages: list[Message]) -> bool:
        """Queue ``messages`` unless that would need to wait for room; return whether queued.

        With ``when_full="drop"`` a full queue drops (and counts) them, which also returns True.
        """
        if self._pid != os.getpid():
            self._reset_state()
        with self._lock:
            # An empty queue takes any batch, so a publish_many() over queue_size still goes.
            if self._queue and len(self._queue) + len(messages) > self.options.queue_size:
                if self.options.when_full == "block":
                    return False
                self._drop(messages)
                return True
            self._enqueue(messages)
        return True

    def _submit_blocking(self, messages: list[Message]) -> None:
        deadline = time.monotonic() + self.options.block_timeout
        with self._lock:
            while self._queue and len(self._queue) + len(messages) > self.options.queue_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopping:
                    self._drop(messages)
                    return
                self._has_room.wait(remaining)
            self._enqueue(messages)

    def _enqueue(self, messages: list[Message]) -> None:
        # Called with the lock held.
        was_empty = not self._queue
        self._queue.extend(messages)
        self._pending += len(messages)
        self.metrics.queue_depth(len(self._queue))
        # Hysteresis: a queue hovering at its limit is one burst, not a burst per free slot.
        if self._dropping.count and len(self._queue) <= self.options.queue_size // 2:
            dropped = self._dropping.end()
            if dropped is not None:
                logger.warning(
                    "rtbridge: %s queue accepts messages again after dropping %d.",
                    self.name,
                    dropped,
                )
        if self._thread is None:
            self._start()
        # Waking the thread on every message costs the request; it only sleeps when idle or
        # inside the batch window, and it wakes by itself at the end of the window.
        if was_empty or len(self._queue) >= self.options.max_batch:
            self._has_items.notify()

    def _drop(self, messages: list[Message]) -> None:
        # Called with the lock held.
        self.dropped_count += len(messages)
        self.metrics.dropped(len(messages))
        if self._dropping.hit(len(messages)):
            logger.warning(
                "rtbridge: %s queue is full (%d messages, when_full=%r); dropping messages until "
                "it drains (see dropped_count). Raise queue_size or check the vendor's health.",
                self.name,
                self.options.queue_size,
                self.options.when_full,
            )

    def _start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name=f"rtbridge-{self.name}-dispatcher", daemon=True
        )
        self._thread.start()
        _LIVE.add(self)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued message is sent or failed; return False on timeout."""
        if self._pid != os.getpid():
            self._reset_state()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if self._pending == 0:
                return True
            self._hurry += 1
            self._has_items.notify()
            try:
                while self._pending:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        logger.warning(
                            "rtbridge: %s flush timed out after %ss with %d message(s) unsent.",
                            self.name,
                            timeout,
                            self._pending,
                        )
                        return False
                    self._all_done.wait(remaining)
            finally:
                self._hurry -= 1
        return True

    def close(self, timeout: float | None = None) -> None:
        """Flush (up to ``timeout``, default ``shutdown_timeout``), then stop the thread."""
        if self._pid != os.getpid():
            self._reset_state()
            return
        timeout = self.options.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        self.flush(timeout)
        with self._lock:
            self._stopping = True
            thread, self._thread = self._thread, None
            self._has_items.notify_all()
            self._has_room.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
        _LIVE.discard(self)

    # Sender side --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._serve()
        finally:
            if self.thread_exit is not None:
                self.thread_exit()

    def _serve(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            if batch:
                try:
                    self.deliver(batch, count_failures=True)
                finally:
                    with self._lock:
                        self._pending -= len(batch)
                        if not self._pending:
                            self._all_done.notify_all()
            self._run_housekeeping_if_due()

    def _take_batch(self) -> list[Message] | None:
        """Wait for and return the next batch: [] when housekeeping is due, None to stop."""
        with self._lock:
            while not self._queue:
                if self._stopping:
                    return None
                if self.housekeeping is None:
                    self._has_items.wait()
                    continue
                remaining = self._next_housekeeping - time.monotonic()
                if remaining <= 0:
                    return []
                self._has_items.wait(remaining)
            deadline = time.monotonic() + self.options.batch_window
            while len(self._queue) < self.options.max_batch and not (self._hurry or self._stopping):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._has_items.wait(remaining)
            size = min(self.options.max_batch, len(self._queue))
            batch = [self._queue.popleft() for _ in range(size)]
            self.batches_count += 1
            self.metrics.batch()
            self.metrics.queue_depth(len(self._queue))
            self._has_room.notify_all()
            return batch

    def _run_housekeeping_if_due(self) -> None:
        if self.housekeeping is None or time.monotonic() < self._next_housekeeping:
            return
        self._next_housekeeping = time.monotonic() + self.housekeeping_interval
        try:
            self.housekeeping()
        except Exception as exc:
            # Housekeeping (pruning) must never stop delivery; it runs again next interval.
            # Logged once per run of failures; a traceback only for what is not a PublishError.
            if self._housekeeping_failing.hit(1):
                logger.warning(
                    "rtbridge: %s housekeeping failed: %s (logged again only after it worked)",
                    self.name,
                    exc,
                    exc_info=not isinstance(exc, PublishError),
                )
        else:
            self._housekeeping_failing.end()

    def deliver(self, messages: list[Message], *, count_failures: bool) -> PublishError | None:
        """Send ``messages`` now (retrying as configured); return the first error, if any."""
        try:
            calls = self.build_calls(messages)
        except PublishError as exc:
            errors: list[tuple[Call | None, PublishError]] = [(None, exc)]
            calls = []
        except Exception as exc:
            # A bug in a backend must not kill the sender thread; report it as a failure.
            logger.error("rtbridge: %s could not build requests", self.name, exc_info=True)
            errors = [(None, PublishError(f"{self.name} could not build requests: {exc!r}"))]
            calls = []
        else:
            results = self._perform_all(calls)
            errors = [(c, e) for c, e in zip(calls, results, strict=True) if e is not None]
        failed = sum(call.failed() if call else len(messages) for call, _ in errors)
        if count_failures:
            self._account(len(messages), failed, errors[0][1] if errors else None)
        else:
            with self._lock:
                self.sent_count += len(messages) - failed
            self.metrics.delivered(len(messages) - failed, 0)
        return errors[0][1] if errors else None

    def _perform_all(self, calls: list[Call]) -> list[PublishError | None]:
        if self.concurrency > 1 and len(calls) > 1:
            try:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(
                        self.concurrency, thread_name_prefix=f"rtbridge-{self.name}-send"
                    )
                return list(self._pool.map(self._perform, calls))
            except RuntimeError:
                # The interpreter is exiting (pools refuse work then): flush one by one.
                pass
        return [self._perform(call) for call in calls]

    def _perform(self, call: Call) -> PublishError | None:
        delay = self.options.retry_backoff
        for attempt in range(1, self.options.max_attempts + 1):
            with self._lock:
                self.calls_count += 1
            if attempt > 1:
                self.metrics.retry()
            try:
                call.send()
                return None
            except PublishError as exc:
                error = exc
            except Exception as exc:
                # Backends map vendor errors to PublishError; anything else is a bug to report.
                logger.error("rtbridge: %s %s failed", self.name, call.label, exc_info=True)
                error = PublishError(f"{call.label} failed unexpectedly: {exc!r}")
            if not error.retryable or attempt == self.options.max_attempts:
                break
            # Full jitter keeps many processes from retrying in lockstep after an outage.
            time.sleep(random.uniform(0.5, 1.0) * min(delay, self.max_backoff))
            delay *= 2
        if error.retryable and self.options.max_attempts > 1:
            error = PublishError(
                f"{error} (gave up after {self.options.max_attempts} attempts of {call.label})",
                status=error.status,
                retryable=True,
            )
        return error

    def _account(self, total: int, failed: int, error: PublishError | None) -> None:
        self.metrics.delivered(total - failed, failed)
        with self._lock:
            self.sent_count += total - failed
            self.failed_count += failed
            if error is not None:
                self.last_error = error
                if self._failing.hit(failed):
                    logger.warning(
                        "rtbridge: %s could not deliver %d message(s): %s. Further failures are "
                        "counted in failed_count and logged again only after a success.",
                        self.name,
                        failed,
                        error,
                    )
            elif self._failing.count:
                failures = self._failing.end()
                if failures is not None:
                    logger.warning(
                        "rtbridge: %s delivers again after %d failed message(s).",
                        self.name,
                        failures,
                    )


class _Burst:
    """A run of drops or failures: its start and end are logged once each.

    A burst that starts within ``quiet`` seconds of the last logged one is only counted, so a
    flapping vendor cannot flood the log either.
    """

    quiet = 60.0

    def __init__(self) -> None:
        self.count = 0
        self.logged = False
        self.last_logged = -self.quiet

    def hit(self, count: int) -> bool:
        """Count ``count`` more; return True if this starts a burst that should be logged."""
        starts = self.count == 0
        self.count += count
        if starts and time.monotonic() - self.last_logged >= self.quiet:
            self.logged = True
            self.last_logged = time.monotonic()
            return True
        return False

    def end(self) -> int | None:
        """End the burst; return its count if its start was logged (so its end is too)."""
        count, logged = self.count, self.logged
        self.count, self.logged = 0, False
        return count if logged else None


class DispatchingBackend(BaseBackend):
    """A backend whose ``publish`` hands messages to a :class:`Dispatcher`.

    Subclasses implement :meth:`build_calls` (messages → vendor requests, no I/O) and may set
    ``send_concurrency`` or call ``self.dispatcher.set_housekeeping(...)``. The delivery
    options it takes from ``RTBRIDGE_OPTIONS`` are the fields of :class:`DispatchOptions`.

    Positions: a subclass with ``keeps_history = True`` is given a history store by
    ``load_backend`` (:meth:`use_history`); each batch then gets its positions from the store
    right before :meth:`build_calls` puts them in the envelopes, in the dispatcher's thread in
    background mode (the request never waits for the store) and in the caller's in sync mode.
    Retries resend the same envelopes, so a position is given out once.
    """

    #: How many calls of one batch may run at once (1 keeps them in order).
    send_concurrency: ClassVar[int] = 1
    #: Bytes the positions add to a message's envelope, at most (taken off the size limit).
    position_bytes: ClassVar[int] = 0
    #: The store assigning positions (None: no positions, history off).
    history_store: HistoryStore | None = None

    def __init__(self, **options: Any) -> None:
        delivery = {name: options.pop(name) for name in DISPATCH_OPTION_NAMES if name in options}
        super().__init__(**options)
        name = type(self).__name__
        dispatch_options = DispatchOptions(**delivery)
        dispatch_options.check(name)
        self.dispatcher = Dispatcher(
            name,
            self._positioned_calls,
            dispatch_options,
            concurrency=self.send_concurrency,
            thread_exit=self._release_thread,
        )

    @classmethod
    def option_names(cls) -> list[str]:
        """Return the keyword options the backend accepts, the dispatcher's included."""
        return sorted({*super().option_names(), *DISPATCH_OPTION_NAMES})

    def build_calls(
        self, messages: list[Message], positions: Positions | None = None
    ) -> list[Call]:
        """Turn ``messages`` into vendor requests, in order, without doing any I/O.

        ``positions`` (with history on) holds each message's position per channel, for the
        envelopes.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement build_calls(messages)")

    # Positions and history ----------------------------------------------------------------

    def use_history(self, store: HistoryStore | None) -> None:
        """Assign positions through ``store`` (None: history off); the size limit shrinks by
        what the positions add to each envelope (``position_bytes``)."""
        if not self.keeps_history:
            super().use_history(store)
        self.history_store = store
        limit = type(self).max_payload_bytes
        if limit is not None:
            self.max_payload_bytes = limit - self.position_bytes if store is not None else limit

    def history_config(self) -> dict[str, Any]:
        """Return ``{"historyEndpoint": <url>}`` for ``client_config()`` when history is on.

        Empty when history is off. The client also reads it as "envelopes carry positions"
        (Pusher's data is then ``{data, offset, epoch}``), so it is there even when
        ``rtbridge.urls`` is not mounted: the documented ``/rtbridge/history`` then answers 404
        and the client reports its fills as not recovered.
        """
        if self.history_store is None:
            return {}
        try:
            return {"historyEndpoint": reverse("rtbridge:history")}
        except NoReverseMatch:
            return {"historyEndpoint": "/rtbridge/history"}

    def _positioned_calls(self, messages: list[Message]) -> list[Call]:
        store = self.history_store
        if store is None:
            return self.build_calls(messages)
        return self.build_calls(messages, store.append(messages))

    def _release_thread(self) -> None:
        if self.history_store is not None:
            self.history_store.release()

    def read_history(self, channel: str, since: Position | None) -> Replay:
        """Return what a client at ``since`` missed on ``channel``, from the history store.

        With history off every answer is ``recovered: false`` at offset 0 (no positions).
        """
        if self.history_store is None:
            if since is None:
                return Replay(channel, 0, "", None)
            return Replay(channel, 0, "", False)
        return self.history_store.replay(channel, since)

    # The BaseBackend contract, routed through the dispatcher ------------------------------

    def publish(self, message: Message) -> None:
        """Queue ``message`` (background mode) or send it now (sync mode)."""
        self.check_message(message)
        self.dispatcher.submit([message])

    def publish_many(self, messages: Iterable[Message]) -> None:
        """Queue or send several messages; they are delivered in order."""
        batch = list(messages)
        for message in batch:
            self.check_message(message)
        if batch:
            self.dispatcher.submit(batch)

    async def apublish(self, message: Message) -> None:
        """Queue ``message`` without blocking the event loop (sync mode sends in a thread)."""
        await self.apublish_many([message])

    async def apublish_many(self, messages: Iterable[Message]) -> None:
        """Queue or send several messages without blocking the event loop."""
        batch = list(messages)
        for message in batch:
            self.check_message(message)
        if not batch:
            return
        if self.dispatcher.options.mode == "background" and self.dispatcher.try_submit(batch):
            return
        # Sync mode, or a full queue with when_full="block": wait in a thread, not the loop.
        await sync_to_async(self.dispatcher.submit, thread_sensitive=False)(batch)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until queued messages are sent or have failed (``None``: no time limit)."""
        self.dispatcher.flush(timeout)

    def close(self) -> None:
        """Flush (up to ``shutdown_timeout``), stop the dispatcher thread, release the client."""
        self.dispatcher.close()
        if self.history_store is not None:
            self.history_store.close()

    @property
    def dropped_count(self) -> int:
        """Return how many messages were dropped because the queue was full."""
        return self.dispatcher.dropped_count

    @property
    def failed_count(self) -> int:
        """Return how many messages failed: after retries (background) or with fail_silently."""
        dispatcher = self.__dict__.get("dispatcher")
        background = dispatcher.failed_count if dispatcher is not None else 0
        return self.__dict__.get("_silent_failures", 0) + background

    @failed_count.setter
    def failed_count(self, value: int) -> None:
        # BaseBackend counts fail_silently drops (sync mode) through this attribute.
        dispatcher = self.__dict__.get("dispatcher")
        background = dispatcher.failed_count if dispatcher is not None else 0
        self.__dict__["_silent_failures"] = value - background
