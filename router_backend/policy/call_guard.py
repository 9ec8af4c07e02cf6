"""Read a model call with a deadline, and give up on it as soon as the model is known dead.

    for piece, final in guarded(lambda stop: call_model("gpt2", fields, stop), model="gpt2",
                                deadline=time.monotonic() + 5, is_dead=lambda: None, on_stall=None):
        ...

A BLS iterator blocks until the model answers; when the model's stub dies mid-generation
it never does (Triton 2.51). So the call is read on its own thread and this one waits
with a timeout: the request ends at its deadline, or within a poll once `is_dead` says why,
never at the client's timeout. `on_stall` runs when no output came for `stall_s`: the router
probes the model then, which is how a death is seen when no other call fails.
No Triton import.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from pointsman.errors import DeadlineExceeded

CANCEL_CHECK_S = 0.02  # how often a request's cancellation is asked of Triton (each time a round trip)
POLL_S = 0.1  # how often a waiting request looks at its deadline and the model's health
STALL_S = 0.25  # no output this long: ask whether the model is still alive (Triton answers a dead stub in ~1 s)
_END = object()


class CallerCheck:
    """Whether a request's caller has gone: `ask()` (a round trip) at most once per `every_s`; once True, always.

    One thread asks this (the router's model-call reader, the engine's CancelWatch) while
    another ends the request, so whoever sends the request's final response calls `end()`
    first: a question under way is waited out, and none is asked after (the answer is then
    True: nobody listens). Triton frees a request's response factory with its final response,
    and asking then crashes tritonserver (SIGSEGV in TRITONBACKEND_ResponseFactoryIsCancelled).
    """

    def __init__(self, ask: Callable[[], bool], every_s: float = CANCEL_CHECK_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ask = ask
        self._every_s = every_s
        self._clock = clock
        self._asked_at = float("-inf")
        self._cancelled = False
        self._ended = False
        self._asking = threading.Lock()

    def __call__(self) -> bool:
        if self._cancelled or self._clock() - self._asked_at < self._every_s:
            return self._cancelled
        with self._asking:
            if self._ended:
                return True
            self._asked_at = self._clock()
            self._cancelled = bool(self._ask())
        return self._cancelled

    def end(self) -> None:
        """The final response is about to go: wait out a question under way, and ask no more."""
        with self._asking:
            self._ended = True
            self._cancelled = True


class ModelDied(Exception):
    """The model died while this call waited (the router turns it into a retryable failure)."""


def guarded(open_call: Callable[[Callable[[], bool]], Iterator[Any]], *, deadline: float,
            is_dead: Callable[[], str | None], on_stall: Callable[[], None] | None = None,
            deadline_note: str = "", poll_s: float = POLL_S, stall_s: float = STALL_S,
            clock: Callable[[], float] = time.monotonic) -> Iterator[Any]:
    """Yield the call's items; raise DeadlineExceeded or ModelDied instead of waiting forever.

    `open_call(stop)` starts the call; `stop()` turns true once this side gave up, so the
    reader cancels the model's work at its next response.
    """
    items: queue.SimpleQueue = queue.SimpleQueue()
    gave_up = threading.Event()

    def read() -> None:
        try:
            for item in open_call(gave_up.is_set):
                items.put(("item", item))
                if gave_up.is_set():
                    return
            items.put(("end", _END))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread, which raises it
            items.put(("error", exc))

    threading.Thread(target=read, name="model-call", daemon=True).start()
    last_output = clock()
    try:
        while True:
            now = clock()
            if now >= deadline:
                raise DeadlineExceeded(f"deadline exceeded: no complete answer within {deadline_note or 'the deadline'}"
                                       "; retry, or allow more time")
            try:
                kind, value = items.get(timeout=min(poll_s, max(0.0, deadline - now)))
            except queue.Empty:
                why = is_dead()
                if why is not None:
                    raise ModelDied(why) from None
                if on_stall is not None and clock() - last_output >= stall_s:
                    on_stall()
                    last_output = clock()  # next probe after another stall_s
                continue
            if kind == "end":
                return
            if kind == "error":
                raise value
            last_output = clock()
            yield value
    finally:
        gave_up.set()
