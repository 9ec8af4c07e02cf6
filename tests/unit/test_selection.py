"""Selection policy without a server: manual, auto, hybrid, fallbacks, load, requirements."""

from __future__ import annotations

import pytest
import tomllib

from pointsman.errors import InvalidRequest, ModelUnavailable
from pointsman.policy.analysis import PromptAnalysis
from pointsman.policy.catalog import TASKS, parse_catalog
from pointsman.policy.contract import parse_router
from pointsman.policy.selection.recommend import recommend
from pointsman.policy.selection.scoring import Requirements, score_models
from pointsman.policy.selection.selector import Selector
from pointsman.policy.selection.status import StatusBoard

# A fixed catalog: the shipped one's scores are measured (export.specialization) and change
# when the demo models are retrained; these tests pin the policy, not the measurements.
TEST_CATALOG = """
[[models]]
name = "gpt2"
family = "gpt2"
capabilities = ["general", "creative", "coding", "qa", "reasoning"]
context_length = 512
specialization_score = { coding = 0.55, creative = 0.85, qa = 0.8, reasoning = 0.75 }
quality_prior = 0.8
tokens_per_second_prior = 150.0

[[models]]
name = "distilgpt2"
family = "gpt2"
capabilities = ["general", "creative", "qa"]
context_length = 512
specialization_score = { coding = 0.35, creative = 0.7, qa = 0.7, reasoning = 0.45 }
quality_prior = 0.6
tokens_per_second_prior = 400.0

[[models]]
name = "codegen"
family = "codegen"
capabilities = ["general", "coding", "reasoning"]
context_length = 512
specialization_score = { coding = 0.95, creative = 0.3, qa = 0.5, reasoning = 0.7 }
quality_prior = 0.8
tokens_per_second_prior = 150.0
"""


def fixed_catalog():
    return parse_catalog(tomllib.loads(TEST_CATALOG))


class FixedAnalyzer:
    """Says every prompt is `task`, with the given confidence and complexity."""

    name = "fixed"

    def __init__(self, task: str = "qa", confidence: float = 0.9, complexity: float = 0.3) -> None:
        self.task, self.confidence, self.complexity = task, confidence, complexity
        self.calls = 0

    def analyze(self, prompt: str) -> PromptAnalysis:
        self.calls += 1
        probs = {t: (self.confidence if t == self.task else (1 - self.confidence) / 3) for t in TASKS}
        return PromptAnalysis(task=self.task, confidence=self.confidence, probabilities=probs,
                              complexity=self.complexity, analyzer=self.name)


def make_selector(ready=("gpt2", "distilgpt2", "codegen"), task="qa", **analyzer):
    catalog = fixed_catalog()
    board = StatusBoard(catalog)
    for name in ready:
        board.set_ready(name, True)
    return Selector(catalog, board, FixedAnalyzer(task, **analyzer))


def request(**fields):
    return parse_router({"text_input": "hello there", **fields})


@pytest.mark.parametrize("fields, mode, model", [
    ({"model": "gpt2"}, "manual", "gpt2"),
    ({"model": "codegen", "auto_select": True}, "manual", "codegen"),  # model wins by precedence
    ({"model": "gpt2", "preferred_model": "gpt2"}, "manual", "gpt2"),
    ({"preferred_model": "gpt2"}, "hybrid", "gpt2"),
    ({"auto_select": True, "preferred_model": "gpt2"}, "auto", None),  # auto_select before preferred
    ({}, "auto", None),
])
def test_precedence_is_model_then_auto_select_then_preferred_model(fields, mode, model):
    decision = make_selector().select(request(**fields))
    assert decision.mode == mode
    if model:
        assert decision.model == model


def test_manual_selection_does_no_prompt_analysis():
    selector = make_selector()
    decision = selector.select(request(model="distilgpt2"))
    assert selector.analyzer.calls == 0
    assert decision.task == "" and "manual" in decision.reason


def test_manual_selection_of_unloaded_model_names_it_and_the_loaded_ones():
    with pytest.raises(ModelUnavailable) as err:
        make_selector(ready=("distilgpt2", "codegen")).select(request(model="gpt2"))
    assert "'gpt2'" in str(err.value) and "distilgpt2, codegen" in str(err.value)


@pytest.mark.parametrize("fields, field", [
    ({"model": "gpt2", "preferred_model": "codegen"}, "preferred_model"),
    ({"auto_select": False}, "auto_select"),
    ({"model": "gpt-5"}, "model"),
    ({"preferred_model": "router"}, "preferred_model"),
])
def test_contradictory_or_unknown_selection_fields_are_errors(fields, field):
    with pytest.raises(InvalidRequest) as err:
        make_selector().select(request(**fields))
    assert err.value.field == field


@pytest.mark.parametrize("task, expected", [("coding", "codegen"), ("creative", "distilgpt2")])
def test_auto_selection_follows_the_task(task, expected):
    decision = make_selector(task=task).select(request(auto_select=True))
    assert decision.model == expected
    assert decision.task == task and decision.analyzer == "fixed"
    assert decision.model in decision.reason and task in decision.reason


def test_complexity_favours_the_higher_quality_model():
    catalog = fixed_catalog()
    board = StatusBoard(catalog)
    for name in catalog.names:
        board.set_ready(name, True)

    def margin(complexity: float) -> float:
        scores = {c.model: c.score for c in score_models(catalog, board.snapshot(), "creative", complexity,
                                                          Requirements(max_tokens=1))}
        return scores["gpt2"] - scores["distilgpt2"]

    assert margin(1.0) > margin(0.0)


def test_busy_model_is_penalised():
    selector = make_selector(task="creative")
    assert selector.select(request()).model == "distilgpt2"
    for _ in range(6):
        selector.board.started("distilgpt2")
    assert selector.select(request()).model == "gpt2"


def test_engine_queue_seen_by_triton_counts_as_load():
    selector = make_selector(task="coding")
    selector.board.set_engine_load("codegen", pending=8, active=16)
    assert selector.select(request()).model != "codegen"


def test_near_ties_spread_load_round_robin():
    twin = {"family": "gpt2", "capabilities": ["general"], "context_length": 64,
            "specialization_score": {t: 0.5 for t in TASKS}, "quality_prior": 0.5, "tokens_per_second_prior": 100.0}
    catalog = parse_catalog({"models": [{"name": "a", **twin}, {"name": "b", **twin}]})
    board = StatusBoard(catalog)
    for name in ("a", "b"):
        board.set_ready(name, True)
    selector = Selector(catalog, board, FixedAnalyzer("qa"))
    assert [selector.select(request()).model for _ in range(4)] in (["a", "b", "a", "b"], ["b", "a", "b", "a"])
    board.started("a")  # a tie goes to the less loaded twin
    assert {selector.select(request()).model for _ in range(3)} == {"b"}


def test_max_response_time_excludes_slow_models():
    selector = make_selector(task="coding")
    selector.board.finished("codegen", tokens=11, duration_s=10.0)  # 1 token/s measured
    decision = selector.select(request(max_tokens=50, max_response_time=2.0))
    assert decision.model != "codegen"


def test_impossible_time_requirement_picks_the_fastest_and_says_so():
    decision = make_selector(task="coding").select(request(max_tokens=400, max_response_time=0.001))
    assert decision.model == "distilgpt2"
    assert "no model meets the requirements" in decision.reason


def test_min_quality_filters_on_task_specialization():
    decision = make_selector(task="creative").select(request(min_quality=0.8))
    assert decision.model == "gpt2"  # distilgpt2's creative score is 0.7


def test_prefer_speed_tips_a_close_call_to_the_fast_model():
    # gpt2 is the better creative model, distilgpt2 2.7x faster: without the flag quality wins
    selector = make_selector(task="creative", complexity=1.0)
    slow = {selector.select(request(max_tokens=4)).model for _ in range(3)}
    fast = {selector.select(request(max_tokens=4, prefer_speed=True)).model for _ in range(3)}

    assert (slow, fast) == ({"gpt2"}, {"distilgpt2"})  # the flag alone changes the choice, every time


@pytest.mark.parametrize("mode, expected", [("auto", "distilgpt2"), ("fastest", "distilgpt2")])
def test_hybrid_falls_back_when_preferred_model_unloaded(mode, expected):
    decision = make_selector(ready=("distilgpt2", "codegen"), task="creative").select(
        request(preferred_model="gpt2", fallback_mode=mode))
    assert decision.model == expected and decision.mode == "hybrid" and decision.fallback_used
    assert "gpt2 is not loaded" in decision.reason and f"fallback {mode}" in decision.reason


def test_hybrid_with_fallback_none_is_an_error_naming_the_preferred_model():
    with pytest.raises(ModelUnavailable, match="'gpt2'"):
        make_selector(ready=("distilgpt2",)).select(request(preferred_model="gpt2", fallback_mode="none"))


def test_no_ready_model_is_unavailable():
    with pytest.raises(ModelUnavailable, match="no language model is ready"):
        make_selector(ready=()).select(request())


def test_retry_moves_to_the_next_candidate_and_says_why():
    selector = make_selector(task="coding")
    params = request(auto_select=True)
    first = selector.select(params)
    retry = selector.retry_after_failure(params, first, "engine crashed")
    assert retry is not None and retry.model != first.model and retry.fallback_used
    assert "engine crashed" in retry.reason and f"retried on {retry.model}" in retry.reason


def test_manual_requests_are_never_retried_elsewhere():
    selector = make_selector()
    params = request(model="gpt2")
    assert selector.retry_after_failure(params, selector.select(params), "boom") is None


@pytest.mark.parametrize("fallback, retried", [("auto", True), ("fastest", True), ("none", False)])
def test_failed_preferred_model_honours_fallback_mode(fallback, retried):
    selector = make_selector(task="creative")
    params = request(preferred_model="gpt2", fallback_mode=fallback)
    retry = selector.retry_after_failure(params, selector.select(params), "boom")
    assert (retry is not None) == retried
    if retry:
        assert retry.model != "gpt2" and retry.fallback_used


def test_recommendation_uses_the_same_scoring_as_auto_selection():
    selector = make_selector(task="coding")
    analysis = selector.analyzer.analyze("def f():")
    rec = recommend(selector.catalog, selector.board.snapshot(), analysis, Requirements(max_tokens=20))
    assert rec.recommended_model == selector.select(request(auto_select=True)).model
    assert 0.0 <= rec.confidence <= 1.0
    assert {a["model"] for a in rec.alternatives} == {"gpt2", "distilgpt2"}
    assert rec.reasoning.startswith(rec.recommended_model) and "coding" in rec.reasoning


def test_recommendation_confidence_drops_when_requirements_cannot_be_met():
    selector = make_selector(task="coding")
    analysis = selector.analyzer.analyze("def f():")
    easy = recommend(selector.catalog, selector.board.snapshot(), analysis, Requirements())
    hard = recommend(selector.catalog, selector.board.snapshot(), analysis,
                     Requirements(max_tokens=400, max_response_time=0.001))
    assert hard.confidence < easy.confidence
    assert "cannot meet max_response_time" in hard.reasoning
