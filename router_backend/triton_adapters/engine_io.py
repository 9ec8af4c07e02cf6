"""Triton side of a language model's engine: responses and cancellation off the decode loop, and gauges.

    outbox, watch = Outbox(), CancelWatch()
    sink = ResponseSink(sender, request, streamed=True, outbox=outbox, watch=watch, observe=gauges.observe)
    engine.submit(generation, sink)

A response_sender.send and a request.is_cancelled are each a round trip to the server
process (2 ms and 0.4 ms measured while the engine computes on every core). Done on the
engine thread they would stall every sequence in the batch: the outbox thread sends, in
order, and the watch thread asks about cancellation, while the engine computes the next step.
"""

from __future__ import annotations

import collections
import queue
import threading
from collections.abc import Callable

import triton_python_backend_utils as pb_utils

from pointsman.engine.scheduler import GenerationEngine, GenerationResult
from pointsman.errors import GenerationFailed, InvalidRequest, PointsmanError
from pointsman.policy.call_guard import CANCEL_CHECK_S, CallerCheck
from pointsman.policy.contract import ROUTED_CANCEL, ROUTED_ID_PREFIX
from pointsman.triton_adapters.triton_io import FINAL, error_response, request_parameters, response

EARLY_STOPS = 256  # stops kept for routed requests not seen yet (another instance may not have run them)


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


class CancelWatch:
    """One thread that asks Triton, every CANCEL_CHECK_S, whether the callers of requests have gone.

    The engine asks a sink before each step of its sequence (a queued request now and then);
    the sink answers from the flag this thread keeps, without a round trip. The thread asks
    Triton only about the sinks the engine asked about since its last round, so a long
    queue costs the server no more round trips than the engine's own sweeps of it did.
    A routed request is also stopped by name (stop), as the router asks: Triton 2.51 does
    not pass a cancel through BLS.
    """

    def __init__(self, every_s: float = CANCEL_CHECK_S) -> None:
        self._every_s = every_s
        self._watched: dict[int, ResponseSink] = {}
        self._routed: dict[str, ResponseSink] = {}  # request id -> sink, for routed requests
        self._early: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._changed = threading.Condition()
        self._running = True
        self._thread = threading.Thread(target=self._run, name="cancel-watch", daemon=True)
        self._thread.start()

    def add(self, sink: ResponseSink) -> None:
        with self._changed:
            self._watched[id(sink)] = sink
            if sink.request_id.startswith(ROUTED_ID_PREFIX):
                self._routed[sink.request_id] = sink
                if sink.request_id in self._early:  # its stop came first
                    del self._early[sink.request_id]
                    sink.stop()
            self._changed.notify()

    def remove(self, sink: ResponseSink) -> None:
        with self._changed:
            self._watched.pop(id(sink), None)
            if self._routed.get(sink.request_id) is sink:
                del self._routed[sink.request_id]

    def stop(self, request_id: str) -> None:
        """Cancel the routed request of this id, now or when it arrives."""
        if not request_id.startswith(ROUTED_ID_PREFIX):
            raise InvalidRequest(ROUTED_CANCEL, f"only a routed request can be stopped (an id starting "
                                                f"{ROUTED_ID_PREFIX!r})")
        with self._changed:
            sink = self._routed.get(request_id)
            if sink is not None:
                sink.stop()
                return
            self._early[request_id] = None
            while len(self._early) > EARLY_STOPS:
                self._early.popitem(last=False)

    def close(self) -> None:
        with self._changed:
            self._running = False
            self._changed.notify()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            with self._changed:  # nothing running: no polling until a request arrives
                self._changed.wait_for(lambda: self._watched or not self._running)
                if not self._running:
                    return
                sinks = list(self._watched.values())
            for sink in sinks:
                if sink.asked:
                    sink.check_cancelled()
            with self._changed:  # the next round, early only at close
                self._changed.wait_for(lambda: not self._running, timeout=self._every_s)


class ResponseSink:
    """Engine output -> Triton responses for one request (the engine's TokenSink)."""

    def __init__(self, sender, request, streamed: bool, outbox: Outbox, watch: CancelWatch,
                 observe: Callable[[GenerationResult], None], prompt_tokens: int = 0, prefix: str = "") -> None:
        self._sender = sender
        self._prompt_tokens = prompt_tokens
        self._prefix = prefix  # the prompt, when the caller asked for it in the output (exclude_input_in_output)
        self._request = request
        self._streamed = streamed  # streamed text went out piece by piece already
        self._outbox = outbox
        self._observe = observe
        self._watch = watch
        self._cancelled = False
        self.asked = False  # the engine asked since the watch last checked
        self._caller = CallerCheck(self._ask_triton, every_s=0.0)  # the watch paces the questions
        self.request_id = request.request_id()
        self._first = True
        watch.add(self)

    def on_text(self, piece: str, tokens: int) -> None:
        self._outbox.post_text(self._sender, self._prefix + piece, tokens, first=self._first)
        self._prefix, self._first = "", False

    def on_finish(self, result: GenerationResult) -> None:
        self._end()
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
        self._end()
        # the package's own errors (Overloaded) keep their kind, so the caller sees "retry"
        failure = error if isinstance(error, PointsmanError) else GenerationFailed(f"generation failed: {error}")
        self._outbox.post(self._sender, lambda: error_response(failure), flags=FINAL)

    def cancelled(self) -> bool:
        self.asked = True
        return self._cancelled  # kept by the CancelWatch thread

    def stop(self) -> None:
        """The router gave up on this request (CancelWatch.stop)."""
        self._cancelled = True

    def check_cancelled(self) -> None:
        """Ask Triton (a round trip); called on the CancelWatch thread, never once the request has ended."""
        self.asked = False
        if self._caller():
            self._cancelled = True

    def _ask_triton(self) -> bool:
        try:
            return bool(self._request.is_cancelled())
        except Exception:  # noqa: BLE001 - the request is gone: treat it as cancelled
            return True

    def _end(self) -> None:
        """Stop asking Triton about this request; called before its final response is posted.

        CallerCheck.end waits out a question under way and allows no more: asking after the final
        response crashes tritonserver (seen in CI).
        """
        self._caller.end()
        self._watch.remove(self)


def routed_stop(request) -> str | None:
    """The routed request id a control request asks to stop (its ROUTED_CANCEL parameter), else None."""
    value = request_parameters(request).get(ROUTED_CANCEL)
    return None if value is None else str(value)


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
        """Every 0.1 s, set the gauges that changed: each set is a round trip to the server process."""
        shown: dict[str, float] = {}
        while not self._stop.wait(0.1):
            stats = self._engine.stats()
            for key, metric, value in (("queued", self._queued, stats.queued), ("active", self._active, stats.active),
                                       ("ttft", self._ttft, self._ttft_s)):
                if shown.get(key) != value:
                    metric.set(value)
                    shown[key] = value

    def observe(self, result: GenerationResult) -> None:
        """Fold one finished request into the engine's time-to-first-token average."""
        new = result.time_to_first_token_s
        self._ttft_s = new if not self._ttft_s else 0.8 * self._ttft_s + 0.2 * new

    def stop(self) -> None:
        self._stop.set()
