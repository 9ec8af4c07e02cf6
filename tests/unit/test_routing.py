"""RoutingService end to end with a fake model call: streaming, retry, errors, observers."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pointsman.errors import GenerationFailed, InvalidRequest, ModelUnavailable
from pointsman.policy.routing import ModelCallError, RoutingService
from pointsman.policy.selection.live import parse_load, parse_ready
from pointsman.policy.selection.metadata import model_metadata
from tests.unit.test_selection import make_selector


@dataclass(frozen=True)
class Done:
    text: str
    tokens: int
    finish_reason: str = "length"


class FakeModels:
    """call_model fake: each model answers its own name in pieces, or fails as told."""

    def __init__(self, failing: dict[str, ModelCallError] | None = None, fail_after_pieces: int | None = None,
                 first_fails: ModelCallError | None = None):
        self.failing = failing or {}
        self.first_fails = first_fails  # whichever model is called first fails with this
        self.fail_after_pieces = fail_after_pieces
        self.calls: list[tuple[str, dict]] = []

    def __call__(self, model, fields, is_cancelled):
        self.calls.append((model, fields))
        if self.first_fails is not None and len(self.calls) == 1:
            self.failing[model] = self.first_fails
        pieces = [f"{model}-{i} " for i in range(fields.get("max_tokens", 20))]
        for i, piece in enumerate(pieces):
            if model in self.failing and (self.fail_after_pieces is None or i == self.fail_after_pieces):
                raise self.failing[model]
            if fields.get("stream", False):
                yield piece, None
        yield "", Done("".join(pieces), len(pieces))


class Sink:
    def __init__(self):
        self.pieces, self.result, self.error = [], None, None

    def on_text(self, piece):
        self.pieces.append(piece)

    def on_finish(self, result):
        self.result = result

    def on_error(self, error):
        self.error = error


def run(fields, models=None, selector=None, task="creative"):
    selector = selector or make_selector(task=task)
    outcomes = []
    service = RoutingService(selector, models or FakeModels(), observers=(outcomes.append,))
    sink = Sink()
    service.handle({"text_input": "a poem please", **fields}, sink, request_id="r1")
    return sink, outcomes[0], selector


def test_non_streaming_request_gets_one_result_with_the_decision():
    sink, outcome, _ = run({"max_tokens": 3})
    model = sink.result.decision.model
    assert sink.pieces == [] and sink.error is None
    assert sink.result.text == f"{model}-0 {model}-1 {model}-2 "
    assert sink.result.tokens == 3 and sink.result.decision.mode == "auto"
    assert outcome.result is sink.result and outcome.error is None and outcome.request_id == "r1"


def test_streaming_request_passes_pieces_through_and_finishes_with_the_whole_text():
    sink, _, _ = run({"max_tokens": 3, "stream": True})
    assert len(sink.pieces) == 3 and sink.result.streamed
    assert "".join(sink.pieces) == sink.result.text


def test_only_generation_fields_reach_the_model():
    models = FakeModels()
    run({"max_tokens": 2, "preferred_model": "gpt2", "user": "u1"}, models)
    model, fields = models.calls[0]
    assert model == "gpt2"
    assert fields == {"text_input": "a poem please", "max_tokens": 2}  # defaults are the model's own


def test_generation_fields_given_under_an_alias_are_forwarded_by_their_name():
    models = FakeModels()
    run({"max_length": 3, "temperature": 0.5, "seed": 7, "stream": True, "model": "codegen"}, models)
    assert models.calls[0][1] == {"text_input": "a poem please", "max_tokens": 3, "temperature": 0.5, "seed": 7,
                                  "stream": True}


def test_runtime_failure_is_retried_once_on_the_next_best_model():
    models = FakeModels(first_fails=ModelCallError("engine crashed"))
    sink, outcome, selector = run({"max_tokens": 2}, models)
    first, second = [m for m, _ in models.calls]
    assert first != second and sink.result.decision.model == second
    assert sink.result.decision.fallback_used and "engine crashed" in sink.result.decision.reason
    assert outcome.fallback_reason == "model_failed"
    assert selector.board.snapshot()[first].errors == 1


def test_manual_request_failure_is_an_error_not_a_substitution():
    models = FakeModels(failing={"gpt2": ModelCallError("engine crashed")})
    sink, outcome, _ = run({"max_tokens": 2, "model": "gpt2"}, models)
    assert [m for m, _ in models.calls] == ["gpt2"]
    assert isinstance(sink.error, GenerationFailed) and "gpt2" in str(sink.error)
    assert outcome.error is sink.error


def test_model_rejecting_the_input_is_passed_through_without_retry():
    rejection = ModelCallError("invalid 'max_tokens': must be at most 500 for this prompt", invalid_argument=True)
    models = FakeModels(first_fails=rejection)
    sink, _, _ = run({"max_tokens": 2}, models)
    assert len(models.calls) == 1
    assert isinstance(sink.error, InvalidRequest) and str(sink.error).startswith("invalid 'max_tokens'")


def test_failure_after_streamed_output_is_not_retried():
    models = FakeModels(first_fails=ModelCallError("lost"), fail_after_pieces=1)
    sink, _, _ = run({"max_tokens": 3, "stream": True}, models)
    assert len(models.calls) == 1 and sink.pieces == [f"{models.calls[0][0]}-0 "]
    assert isinstance(sink.error, GenerationFailed)


def test_bad_request_reaches_the_sink_and_the_observers():
    sink, outcome, _ = run({"max_tokens": 0})
    assert isinstance(sink.error, InvalidRequest) and sink.error.field == "max_tokens"
    assert outcome.params is None and outcome.decision is None


def test_unavailable_model_error_names_loaded_models():
    sink, _, _ = run({"model": "gpt2"}, selector=make_selector(ready=("codegen",)))
    assert isinstance(sink.error, ModelUnavailable) and "codegen" in str(sink.error)


def test_router_in_flight_count_returns_to_zero():
    sink, _, selector = run({"max_tokens": 2})
    status = selector.board.snapshot()[sink.result.decision.model]
    assert status.in_flight == 0 and status.requests_served == 1 and status.last_used is not None


METRICS = """# TYPE nv_inference_pending_request_count gauge
nv_inference_pending_request_count{model="gpt2",version="1"} 3
nv_inference_pending_request_count{model="router",version="1"} 1
# TYPE pointsman_engine_active gauge
pointsman_engine_active{model="gpt2"} 5
# TYPE pointsman_engine_queued gauge
pointsman_engine_queued{model="gpt2"} 2
"""


def test_metrics_text_gives_pending_and_engine_load_per_model():
    load = parse_load(METRICS)
    assert load["gpt2"] == {"nv_inference_pending_request_count": 3.0, "pointsman_engine_active": 5.0,
                            "pointsman_engine_queued": 2.0}
    assert "pointsman_engine_active" not in load["router"]


def test_repository_index_gives_ready_models():
    index = [{"name": "gpt2", "version": "1", "state": "READY"},
             {"name": "codegen", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"},
             {"name": "distilgpt2"}]
    assert parse_ready(index) == {"gpt2"}


def test_metadata_has_the_original_plan_shape_with_live_figures():
    sink, _, selector = run({"max_tokens": 4})
    model = sink.result.decision.model
    meta = model_metadata(selector.catalog[model], selector.board.snapshot()[model])
    assert set(meta) >= {"model_name", "capabilities", "specialization_score", "performance_metrics",
                         "current_status"}
    assert meta["current_status"]["loaded"] is True and meta["current_status"]["last_used"].endswith("Z")
    assert meta["performance_metrics"]["requests_served"] == 1


@pytest.mark.parametrize("bad", [{"stream": "maybe"}, {"fallback_mode": "random"}, {"min_quality": 2}])
def test_router_fields_are_validated(bad):
    sink, _, _ = run(bad)
    assert isinstance(sink.error, InvalidRequest) and sink.error.field == next(iter(bad))


@dataclass(frozen=True)
class Arm:
    experiment: str
    arm: str
    model: str | None = None
    policy: str | None = None


class FakeExperiments:
    """Assigns every auto request (optionally only of one task) to one arm; records the calls."""

    def __init__(self, arm: Arm, task: str | None = None):
        self.arm, self.task, self.calls = arm, task, []

    def assign(self, mode, task, user):
        self.calls.append((mode, task, user))
        if self.task is None or task == self.task:
            return self.arm
        return None


def run_with(experiments, fields, analyzers=None, task="creative"):
    selector = make_selector(task=task)
    outcomes = []
    service = RoutingService(selector, FakeModels(), observers=(outcomes.append,), experiments=experiments,
                             analyzers=analyzers)
    sink = Sink()
    service.handle({"text_input": "a poem please", "max_tokens": 2, **fields}, sink)
    return sink, outcomes[0]


def test_model_arm_overrides_auto_selection_and_is_recorded():
    experiments = FakeExperiments(Arm("poems", "b", model="codegen"), task="creative")
    sink, outcome = run_with(experiments, {"user": "u7"})
    assert sink.result.decision.model == "codegen"
    assert "experiment poems, arm b" in sink.result.decision.reason
    assert outcome.assignment.arm == "b"
    assert experiments.calls == [("auto", None, "u7"), ("auto", "creative", "u7")]


@pytest.mark.parametrize("fields", [{"model": "gpt2"}, {"preferred_model": "gpt2"}])
def test_experiments_never_override_manual_or_hybrid_requests(fields):
    experiments = FakeExperiments(Arm("poems", "b", model="codegen"))
    sink, outcome = run_with(experiments, fields)
    assert sink.result.decision.model == "gpt2" and outcome.assignment is None and experiments.calls == []


def test_policy_arm_selects_with_that_analyser():
    from tests.unit.test_selection import FixedAnalyzer

    coding = FixedAnalyzer("coding")
    coding.name = "classifier"
    sink, outcome = run_with(FakeExperiments(Arm("analysers", "classifier", policy="classifier")), {},
                             analyzers={"classifier": coding}, task="creative")
    assert sink.result.decision.model == "codegen" and sink.result.decision.task == "coding"
    assert outcome.assignment.policy == "classifier"


def test_arm_whose_model_is_not_ready_leaves_the_request_out_of_the_experiment():
    selector = make_selector(ready=("gpt2", "distilgpt2"), task="creative")
    outcomes = []
    service = RoutingService(selector, FakeModels(), observers=(outcomes.append,),
                             experiments=FakeExperiments(Arm("poems", "b", model="codegen")))
    sink = Sink()
    service.handle({"text_input": "a poem", "max_tokens": 2}, sink)
    assert sink.result.decision.model != "codegen" and outcomes[0].assignment is None


def test_classifier_policy_uses_the_classifier_and_falls_back_to_lexical_when_it_is_away():
    from pointsman.policy.analysis import ClassifierAnalyzer, LexicalAnalyzer
    from tests.unit.test_selection import FixedAnalyzer

    served = FixedAnalyzer("reasoning")
    served.name = "classifier"
    assert ClassifierAnalyzer(served.analyze, fallback=LexicalAnalyzer()).analyze("x").task == "reasoning"
    away = ClassifierAnalyzer(lambda prompt: None, fallback=LexicalAnalyzer()).analyze("def f(x):\n    return x")
    assert away.task == "coding" and away.analyzer == "lexical (classifier unavailable)"



def test_stream_sink_hears_the_decision_before_the_first_piece():
    heard: list[tuple[str, str]] = []

    class AnnouncingSink(Sink):
        def on_decision(self, decision):
            heard.append(("decision", decision.model))

        def on_text(self, piece):
            heard.append(("text", piece))

    service = RoutingService(make_selector(task="creative"), FakeModels())
    service.handle({"text_input": "a poem", "max_tokens": 2, "stream": True}, AnnouncingSink())
    assert heard[0][0] == "decision" and [kind for kind, _ in heard[1:]] == ["text", "text"]
    assert heard[1][1].startswith(heard[0][1])


# -- the catalog's engine_model: the Triton model behind a user-visible name ----------------
ENGINE_CATALOG = """
[[models]]
name = "gpt2"
engine_model = "gpt2_stream"
family = "gpt2"
capabilities = ["general", "creative", "coding", "qa", "reasoning"]
context_length = 512
specialization_score = { coding = 0.5, creative = 0.8, qa = 0.8, reasoning = 0.7 }
quality_prior = 0.8
tokens_per_second_prior = 150.0

[[models]]
name = "llama"
family = "gpt2"
capabilities = ["general", "creative", "qa"]
context_length = 512
specialization_score = { coding = 0.3, creative = 0.7, qa = 0.7, reasoning = 0.4 }
quality_prior = 0.6
tokens_per_second_prior = 400.0
"""


def _engine_catalog():
    import tomllib

    from pointsman.policy.catalog import parse_catalog

    return parse_catalog(tomllib.loads(ENGINE_CATALOG))


def test_router_calls_the_engine_model_and_reports_the_catalog_name():
    from pointsman.policy.selection.selector import Selector
    from pointsman.policy.selection.status import StatusBoard
    from tests.unit.test_selection import FixedAnalyzer

    catalog = _engine_catalog()
    board = StatusBoard(catalog)
    for name in catalog.names:
        board.set_ready(name, True)
    models = FakeModels()
    sink, _, _ = run({"model": "gpt2", "max_tokens": 2}, models, Selector(catalog, board, FixedAnalyzer()))
    assert models.calls[0][0] == "gpt2_stream" and sink.result.decision.model == "gpt2"
    run({"model": "llama", "max_tokens": 2}, models, Selector(catalog, board, FixedAnalyzer()))
    assert models.calls[1][0] == "llama"  # no engine_model: called by its own name
