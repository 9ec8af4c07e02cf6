"""The classifier's side of prompt analysis: outputs -> PromptAnalysis, the combine policy, its config."""

from __future__ import annotations

import numpy as np
import pytest

from pointsman.export.dataset import PROMPTS_FILE
from pointsman.policy.analysis import TASKS, PromptAnalysis
from pointsman.policy.analysis.classifier import analysis_from_outputs, combine


def analysis(task: str, confidence: float, analyzer: str, complexity: float = 0.4) -> PromptAnalysis:
    rest = (1.0 - confidence) / (len(TASKS) - 1)
    return PromptAnalysis(task, confidence, {t: confidence if t == task else rest for t in TASKS}, complexity,
                          analyzer)


@pytest.mark.parametrize("probabilities, complexity", [
    ([0.7, 0.1, 0.1, 0.1], 0.25),
    (np.array([[0.7, 0.1, 0.1, 0.1]], np.float32), np.array([0.25], np.float32)),  # as a BLS call returns them
    (np.array([0.7, 0.1, 0.1, 0.1], np.float32), np.array([[0.25]], np.float32)),
])
def test_classifier_outputs_become_an_analysis_in_tasks_order(probabilities, complexity):
    result = analysis_from_outputs(probabilities, complexity)

    assert result.task == TASKS[0] == "coding"
    assert result.confidence == pytest.approx(0.7)
    assert result.complexity == pytest.approx(0.25)
    assert result.analyzer == "classifier"


@pytest.mark.parametrize("probabilities", [[0.5, 0.5], [0.2] * 5, [np.nan, 0.2, 0.3, 0.5]])
def test_malformed_classifier_outputs_are_refused(probabilities):
    with pytest.raises(ValueError, match="probabilities"):
        analysis_from_outputs(probabilities, 0.1)


def test_unnormalised_outputs_are_normalised_and_complexity_clipped():
    result = analysis_from_outputs([2.0, 0.0, 1.0, 1.0], 1.4)

    assert sum(result.probabilities.values()) == pytest.approx(1.0)
    assert result.confidence == pytest.approx(0.5) and result.complexity == 1.0


@pytest.mark.parametrize("lexical, classifier, task, decided_by", [
    (analysis("qa", 0.5, "lexical"), None, "qa", "lexical"),  # classifier not loaded
    (analysis("qa", 0.5, "lexical"), analysis("reasoning", 0.9, "classifier"), "reasoning", "classifier"),
    (analysis("coding", 0.99, "lexical"), analysis("coding", 0.6, "classifier"), "coding", "classifier"),
    (analysis("coding", 0.99, "lexical"), analysis("qa", 0.4, "classifier"), "coding",
     "lexical>classifier"),  # near-certain lexical evidence beats an unsure classifier
    (analysis("coding", 0.95, "lexical"), analysis("qa", 0.6, "classifier"), "qa",
     "classifier"),  # ... but at LEXICAL_WEIGHT 0.25 a fairly sure classifier keeps its choice
    (analysis("coding", 0.6, "lexical"), analysis("creative", 0.97, "classifier"), "creative", "classifier"),
    (analysis("qa", 0.9, "lexical"), analysis("reasoning", 0.35, "classifier"), "qa",
     "lexical>classifier"),  # an unsure classifier: the rules' sure vote decides
])
def test_combine_says_who_decided(lexical, classifier, task, decided_by):
    result = combine(lexical, classifier)

    assert (result.task, result.analyzer) == (task, decided_by)


def test_combined_complexity_is_the_mean_of_both():
    result = combine(analysis("qa", 0.5, "lexical", 0.2), analysis("qa", 0.9, "classifier", 0.6))

    assert result.complexity == pytest.approx(0.4)


def test_committed_config_is_the_generated_one_with_batching_on():
    pytest.importorskip("tritonclient.grpc")
    from pointsman.export.classifier import NAME, classifier_config, render_config

    folder = PROMPTS_FILE.parents[2] / "model_repository" / NAME
    config = classifier_config()

    regenerate = "run: python -m pointsman.export.classifier --write-config"
    assert (folder / "config.pbtxt").read_text() == render_config(), regenerate
    assert config.max_batch_size > 0 and config.HasField("dynamic_batching")
    assert [o.name for o in config.output] == ["probabilities", "complexity", "task"]
    assert list(config.output[0].dims) == [len(TASKS)]
    assert (folder / "1" / "model.py").exists()


class _Lexical:
    """A lexical stand-in with a fixed answer."""

    threshold = 0.8

    def __init__(self, answer: PromptAnalysis) -> None:
        self.answer = answer

    def analyze(self, prompt: str) -> PromptAnalysis:
        return self.answer

    def is_confident(self, result: PromptAnalysis) -> bool:
        return result.confidence >= self.threshold


def _never_called(prompt: str) -> PromptAnalysis:
    raise AssertionError("the classifier must not be called")


def _unavailable(prompt: str) -> PromptAnalysis:
    raise RuntimeError("BLS: model prompt_classifier is not ready")


@pytest.mark.parametrize("lexical, classify, task, decided_by", [
    (analysis("coding", 0.97, "lexical"), _never_called, "coding", "lexical"),  # confident: fast path
    (analysis("qa", 0.5, "lexical"), lambda p: analysis("reasoning", 0.9, "classifier"), "reasoning", "classifier"),
    (analysis("qa", 0.5, "lexical"), lambda p: None, "qa", "lexical (classifier not loaded)"),
    (analysis("qa", 0.5, "lexical"), _unavailable, "qa", "lexical (classifier unavailable)"),
])
def test_two_stage_analyzer_calls_the_classifier_only_when_unsure(lexical, classify, task, decided_by):
    from pointsman.policy.analysis import TwoStageAnalyzer

    result = TwoStageAnalyzer(_Lexical(lexical), classify).analyze("any prompt")

    assert (result.task, result.analyzer) == (task, decided_by)
