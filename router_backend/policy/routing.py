"""One router request end to end: validate, select, call the model under a deadline, retry once, report.

    service = RoutingService(selector, call_model=generate_via_bls)
    service.handle(fields, sink, request_id="42")

No Triton import: the adapter passes the BLS call in as `call_model` and receives
output through a RouterSink, so the whole flow is unit-tested with fakes.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pointsman.errors import GenerationFailed, ModelRejected, ModelUnavailable, Overloaded, PointsmanError
from pointsman.policy.admission import Admission
from pointsman.policy.call_guard import ModelDied, guarded
from pointsman.policy.contract import GenerateParams, RouterParams, parse_router
from pointsman.policy.health import HealthRegistry, is_dead_stub, is_overloaded
from pointsman.policy.selection.selector import Analyzer, Decision, Selector

LOGGER = logging.getLogger(__name__)
GENERATION_FIELDS = tuple(GenerateParams.model_fields)


class ModelCallError(Exception):
    """A model call failed; `invalid_argument` marks the caller's fault (no retry)."""

    def __init__(self, message: str, invalid_argument: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.invalid_argument = invalid_argument
        self.streamed = False  # output already reached the caller: too late to retry


class Assignment(Protocol):
    """An A/B arm (pointsman.ops.experiments.Assignment): a model, or an analyser policy."""

    experiment: str
    arm: str
    model: str | None
    policy: str | None


class Experiments(Protocol):
    def assign(self, selection_mode: str, task: str | None, user: str | None) -> Assignment | None: ...


class Final(Protocol):
    text: str
    tokens: int
    finish_reason: str


@dataclass(frozen=True)
class ModelOutput:
    """A language model's final answer (what call_model yields last)."""

    text: str
    tokens: int
    finish_reason: str
    mean_logprob: float | None = None
    prompt_tokens: int = 0  # as the model's tokenizer counted the prompt (rendered chat included)


# (model, generation fields, is_cancelled) -> (piece, None)* then ("", Final)
CallModel = Callable[[str, dict[str, Any], Callable[[], bool]], Iterator[tuple[str, Final | None]]]
# (Triton model name) -> the error a cheap invalid request got back, None when it was answered as expected
ProbeModel = Callable[[str], str | None]
PROBE_EVERY_S = 0.25  # at most one liveness probe per model this often, however many calls stall


@dataclass(frozen=True)
class RoutedResult:
    request_id: str
    text: str
    tokens: int
    finish_reason: str
    decision: Decision
    ttft_s: float | None
    duration_s: float
    streamed: bool = False  # the text already went out piece by piece
    mean_logprob: float | None = None  # the model's mean token log-likelihood (A/B quality signal)
    prompt_tokens: int = 0


@dataclass(frozen=True)
class Outcome:
    """What happened to one request, success or not: the input of metrics and analytics."""

    request_id: str
    params: RouterParams | None
    decision: Decision | None
    result: RoutedResult | None
    error: PointsmanError | None
    fallback_reason: str | None
    duration_s: float
    assignment: Assignment | None = None


class RouterSink(Protocol):
    """Where output goes.

    A sink may also have on_decision(decision): called before each model call (again after
    a retry), so a streamed answer can name its model with its first piece.
    """

    def on_text(self, piece: str) -> None: ...
    def on_finish(self, result: RoutedResult) -> None: ...
    def on_error(self, error: PointsmanError) -> None: ...


def generation_fields(params: RouterParams) -> dict[str, Any]:
    """The generation fields the caller set (the model applies the same defaults to the rest).

    Forwarding only these keeps the BLS request small: every tensor is a copy through
    shared memory on the hop between router and model.
    """
    given = params.model_fields_set
    return {name: getattr(params, name) for name in GENERATION_FIELDS if name in given or name == "text_input"}


class RoutingService:
    """Validates, selects, calls through `call_model`, retries a run-time failure once."""

    def __init__(self, selector: Selector, call_model: CallModel,
                 observers: tuple[Callable[[Outcome], None], ...] = (),
                 experiments: Experiments | None = None, analyzers: Mapping[str, Analyzer] | None = None,
                 admission: Admission | None = None, probe: ProbeModel | None = None) -> None:
        self.selector = selector
        self.board = selector.board
        self.health: HealthRegistry = selector.health
        self.call_model = call_model
        self.observers = list(observers)
        self.experiments = experiments
        self.analyzers = dict(analyzers or {})  # policy name -> analyser, for policy arms
        self.admission = admission or Admission()
        self.probe = probe
        self._probed_at: dict[str, float] = {}
        self._probe_lock = threading.Lock()

    def _decide(self, params: RouterParams) -> tuple[Decision, Assignment | None]:
        """Select, letting an active experiment pick the analyser or the model of auto requests."""
        auto = params.model is None and (params.auto_select or params.preferred_model is None)
        if self.experiments is None or not auto:
            return self.selector.select(params), None  # manual and hybrid are never overridden
        assignment = self.experiments.assign("auto", None, params.user)
        policy = assignment.policy if assignment else None
        decision = self.selector.select(params, self.analyzers.get(policy) if policy else None)
        if assignment is None:
            assignment = self.experiments.assign("auto", decision.task, params.user)
        if assignment is not None and assignment.model:
            if assignment.model not in self.selector.usable_models():
                return decision, None  # the arm's model is away: this request is not in the experiment
            decision = dataclasses.replace(
                decision, model=assignment.model,
                reason=f"experiment {assignment.experiment}, arm {assignment.arm}: {assignment.model} "
                       f"(scoring chose {decision.model}; {decision.reason})")
        elif assignment is not None:
            decision = dataclasses.replace(
                decision, reason=f"experiment {assignment.experiment}, arm {assignment.arm}: {decision.reason}")
        return decision, assignment

    def handle(self, fields: dict[str, Any], sink: RouterSink, request_id: str = "",
               is_cancelled: Callable[[], bool] = lambda: False, arrived: float | None = None) -> Outcome:
        """Answer one request; `arrived` (monotonic) starts its deadline, when it waited for a worker."""
        start = time.perf_counter()
        arrived = time.monotonic() if arrived is None else arrived
        request_id = request_id or uuid.uuid4().hex
        params: RouterParams | None = None
        decision: Decision | None = None
        assignment: Assignment | None = None
        fallback_reason: str | None = None
        try:
            params = parse_router(fields)
            deadline = self.admission.deadline_for(params.max_response_time, arrived)
            decision, assignment = self._decide(params)
            if decision.fallback_used:
                fallback_reason = "preferred_unavailable"
            result, decision, retried = self._generate(params, decision, sink, request_id, is_cancelled, start,
                                                       deadline)
            if retried:
                fallback_reason = "model_failed"
            sink.on_finish(result)
            outcome = Outcome(request_id, params, decision, result, None, fallback_reason,
                              time.perf_counter() - start, assignment)
        except PointsmanError as exc:
            sink.on_error(exc)
            outcome = Outcome(request_id, params, decision, None, exc, fallback_reason, time.perf_counter() - start,
                              assignment)
        for observe in self.observers:
            try:
                observe(outcome)
            except Exception:
                LOGGER.exception("observer failed")
        return outcome

    def _generate(self, params: RouterParams, decision: Decision, sink: RouterSink, request_id: str,
                  is_cancelled: Callable[[], bool], start: float,
                  deadline: tuple[float, str]) -> tuple[RoutedResult, Decision, bool]:
        fields = generation_fields(params)
        retried = False
        announce = getattr(sink, "on_decision", None)
        while True:
            if announce is not None:
                announce(decision)
            try:
                final, ttft = self._call(decision.model, fields, params.stream, sink, is_cancelled, deadline)
                break
            except ModelCallError as exc:
                if exc.invalid_argument:
                    raise ModelRejected(exc.message) from None
                retry = None if (retried or exc.streamed) else self.selector.retry_after_failure(
                    params, decision, exc.message)
                if retry is None:
                    if is_overloaded(exc.message):
                        raise Overloaded(f"model '{decision.model}' is {exc.message}") from None
                    raise GenerationFailed(f"model '{decision.model}' failed: {exc.message}") from None
                LOGGER.warning("%s failed (%s); retrying on %s", decision.model, exc.message, retry.model)
                decision, retried = retry, True
        result = RoutedResult(request_id=request_id, text=final.text, tokens=final.tokens,
                              finish_reason=final.finish_reason, decision=decision, ttft_s=ttft,
                              duration_s=time.perf_counter() - start, streamed=params.stream,
                              mean_logprob=getattr(final, "mean_logprob", None),
                              prompt_tokens=getattr(final, "prompt_tokens", 0))
        return result, decision, retried

    def _engine_of(self, model: str) -> str:
        """The Triton model that serves a catalog name (its engine_model, else the name)."""
        catalog = self.selector.catalog
        return catalog[model].call_name if model in catalog else model

    def _call(self, model: str, fields: dict[str, Any], stream: bool, sink: RouterSink,
              is_cancelled: Callable[[], bool], deadline: tuple[float, str]) -> tuple[Final, float | None]:
        self.board.started(model)
        began = time.perf_counter()
        first: float | None = None
        final: Final | None = None
        pieces: list[str] = []
        engine = self._engine_of(model)
        epoch = self.health.epoch(model)

        def died() -> str | None:  # another call, or a probe, found the model dead since this call began
            health = self.health.get(model)
            return health.detail or health.reason.value if health.epoch != epoch else None

        calls = guarded(lambda stop: self.call_model(engine, fields, lambda: stop() or is_cancelled()),
                        deadline=deadline[0], deadline_note=deadline[1], is_dead=died,
                        on_stall=lambda: self._probe_soon(model, engine))
        try:
            for piece, done in calls:
                if piece:
                    first = first or time.perf_counter()
                    pieces.append(piece)
                    if stream:
                        sink.on_text(piece)
                if done is not None:
                    final = done
        except (ModelCallError, ModelDied) as exc:
            self.board.finished(model, 0, time.perf_counter() - began, failed=True)
            error = exc if isinstance(exc, ModelCallError) else ModelCallError(
                f"model '{model}' died mid-generation ({exc})")
            if not error.invalid_argument:
                self.health.record_failure(model, error.message, epoch)
            error.streamed = bool(pieces) and stream
            raise error from None
        except BaseException:
            self.board.finished(model, 0, time.perf_counter() - began, failed=True)
            raise
        if final is None:
            self.board.finished(model, 0, time.perf_counter() - began, failed=True)
            raise ModelUnavailable(f"model '{model}' ended the stream without a final response")
        self.health.record_success(model)
        duration = time.perf_counter() - began
        ttft = (first - began) if first is not None else None
        self.board.finished(model, final.tokens, duration, ttft)
        if stream:
            final = ModelOutput("".join(pieces), final.tokens, final.finish_reason,
                                getattr(final, "mean_logprob", None), getattr(final, "prompt_tokens", 0))
        return final, ttft

    def _probe_soon(self, model: str, engine: str) -> None:
        """Ask, off this thread, whether a model that went quiet is still alive (one probe per interval)."""
        if self.probe is None:
            return
        now = time.monotonic()
        with self._probe_lock:
            if now - self._probed_at.get(model, 0.0) < PROBE_EVERY_S:
                return
            self._probed_at[model] = now
        epoch = self.health.epoch(model)  # an answer that comes after a reload is about the old instance
        threading.Thread(target=self._probe, args=(model, engine, epoch), name="model-probe", daemon=True).start()

    def _probe(self, model: str, engine: str, epoch: int) -> None:
        try:
            error = self.probe(engine) if self.probe is not None else None
        except Exception as exc:  # noqa: BLE001 - a probe that cannot run says nothing about the model
            LOGGER.debug("probe of %s failed to run: %s", engine, exc)
            return
        if error is not None and is_dead_stub(error) and self.health.record_failure(model, error, epoch):
            LOGGER.warning("%s is unhealthy: a probe found %s", model, error)
