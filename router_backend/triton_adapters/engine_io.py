"""Triton side of a language model's engine: response delivery off the decode loop, and gauges.

    outbox = Outbox(); sink = ResponseSink(sender, request, streamed=True, outbox=outbox, observe=gauges.observe)
    engine.submit(generation, sink)

A response_sender.send is a round trip to the server process. Done on the engine thread it
would stall every sequence in the batch once per token; the outbox thread sends instead, in
order, while the engine computes the next step.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import triton_python_backend_utils as pb_utils

from pointsman.engine.scheduler import GenerationEngine, GenerationResult
from pointsman.errors import GenerationFailed, PointsmanError
from pointsman.triton_adapters.triton_io import FINAL, error_response, response

CANCEL_CHECK_S = 0.02  # asking Triton whether a request was cancelled is a round trip too


class Outbox:
    """One thread that sends every response of one model instance, in order per request.

    Streamed pieces that queue up while a send is under way go out as one response (the
    text of several tokens, with the latest token count): when delivery is slower than
    decoding, fewer round trips. A request's first piece always goes out alone, so the
    time to first token never waits for later tokens and a stream of several pieces
    always arrives as several responses.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="response-outbox", daemon=True)
        self._thread.start()

    def post_text(self, sender, piece: str, tokens: int, first: bool = False) -> None:
        self._queue.put((sender, (piece, tokens), None, first))

    def post(self, sender, build: Callable[[], object], flags: int = 0) -> None:
        self._queue.put((sender, None, build, flags))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while (first := self._queue.get()) is not None:
            batch, stop = [first], False
            while not self._queue.empty():
                item = self._queue.get()
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._deliver(batch)
            if stop:
                return

    @staticmethod
    def _deliver(batch: list) -> None:
        texts: dict = {}  # sender -> (text, tokens) pieces not yet sent (insertion order = arrival order)
        for sender, piece, build, mark in batch:  # mark: a response's flags, or a text's "first" bit
            if piece is not None and mark:  # a first piece: nothing of its request can be queued before it
                _send_text(sender, [piece])
            elif piece is not None:
                texts.setdefault(sender, []).append(piece)
            else:
                if sender in texts:  # its earlier text goes first
                    _send_text(sender, texts.pop(sender))
                _send(sender, build, mark)
        for sender, pieces in texts.items():
            _send_text(sender, pieces)


def _send_text(sender, pieces: list[tuple[str, int]]) -> None:
    """One streamed response: the pieces' text, and the token count of the last (tokens generated so far)."""
    joined, tokens = "".join(text for text, _ in pieces), pieces[-1][1]
    _send(sender, lambda: response(text_output=joined, tokens=tokens), 0)


def _send(sender, build: Callable[[], object], flags: int) -> None:
    try:
        sender.send(build(), flags=flags)
    except Exception:  # noqa: BLE001 - the caller is gone; nothing more can reach it
        return


class ResponseSink:
    """Engine output -> Triton responses for one request (the engine's TokenSink)."""

    def __init__(self, sender, request, streamed: bool, outbox: Outbox,
                 observe: Callable[[GenerationResult], None], prompt_tokens: int = 0, prefix: str = "") -> None:
        self._sender = sender
        self._prompt_tokens = prompt_tokens
        self._prefix = prefix  # the prompt, when the caller asked for it in the output (exclude_input_in_output)
        self._request = request
        self._streamed = streamed  # streamed text went out piece by piece already
        self._outbox = outbox
        self._observe = observe
        self._checked_at = 0.0
        self._cancelled = False
        self._first = True

    def on_text(self, piece: str, tokens: int) -> None:
        self._outbox.post_text(self._sender, self._prefix + piece, tokens, first=self._first)
        self._prefix, self._first = "", False

    def on_finish(self, result: GenerationResult) -> None:
        self._observe(result)
        if result.finish_reason == "cancelled":  # the log line tests and operators look for
            pb_utils.Logger.log_info(f"pointsman engine: request {self._request.request_id()!r} cancelled "
                                     f"after {result.tokens} tokens")
        text = self._prefix + ("" if self._streamed else result.text)
        logprob = float(result.mean_logprob) if result.mean_logprob is not None else float("nan")
        self._outbox.post(self._sender, lambda: response(text_output=text, tokens=result.tokens,
                                                          finish_reason=result.finish_reason,
                                                          prompt_tokens=self._prompt_tokens,
                                                          mean_logprob=logprob), flags=FINAL)

    def on_error(self, error: Exception) -> None:
        # the package's own errors (Overloaded) keep their kind, so the caller sees "retry"
        failure = error if isinstance(error, PointsmanError) else GenerationFailed(f"generation failed: {error}")
        self._outbox.post(self._sender, lambda: error_response(failure), flags=FINAL)

    def cancelled(self) -> bool:
        now = time.monotonic()
        if now - self._checked_at >= CANCEL_CHECK_S:
            self._checked_at = now
            self._cancelled = self._request.is_cancelled()
        return self._cancelled


class EngineGauges:
    """Publishes the engine's queue and batch on Triton's metrics port (the router balances on them)."""

    def __init__(self, model: str, engine: GenerationEngine, load_seconds: float) -> None:
        # a Metric is only valid while its MetricFamily lives: keep both
        self._families = []

        def gauge(name: str, doc: str):
            family = pb_utils.MetricFamily(name=name, description=doc, kind=pb_utils.MetricFamily.GAUGE)
            self._families.append(family)
            return family.Metric(labels={"model": model})

        self._queued = gauge("pointsman_engine_queued", "Requests waiting for a slot in the model's engine")
        self._active = gauge("pointsman_engine_active", "Sequences decoding in the model's engine batch")
        self._ttft = gauge("pointsman_engine_time_to_first_token_seconds",
                           "Time to first token inside the engine (EWMA over all callers)")
        self._load = gauge("pointsman_model_load_seconds", "Seconds the model took to load")
        self._load.set(load_seconds)
        self._ttft_s = 0.0
        self._engine = engine
        self._stop = threading.Event()
        threading.Thread(target=self._run, name="engine-gauges", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            stats = self._engine.stats()
            self._queued.set(stats.queued)
            self._active.set(stats.active)
            self._ttft.set(self._ttft_s)

    def observe(self, result: GenerationResult) -> None:
        """Fold one finished request into the engine's time-to-first-token average."""
        new = result.time_to_first_token_s
        self._ttft_s = new if not self._ttft_s else 0.8 * self._ttft_s + 0.2 * new

    def stop(self) -> None:
        self._stop.set()
