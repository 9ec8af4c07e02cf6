"""The router's in-process classifier: loads the served model's files, and falls back to lexical when it fails."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest

from pointsman.policy.analysis import LexicalAnalyzer, TwoStageAnalyzer
from pointsman.policy.analysis.classifier import OnnxPromptClassifier
from pointsman.policy.analysis.in_process import InProcessClassifier

FOLDER = Path(__file__).resolve().parents[2] / "model_repository" / "prompt_classifier" / "1"
VAGUE = "hello there"  # the lexical analyser is unsure of it, so the classifier is asked


class _BrokenSession:
    """An onnxruntime session whose every run fails, as one would after its memory went bad."""

    def run(self, names, feeds):
        raise RuntimeError("onnxruntime: [ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION")


@pytest.fixture(scope="module")
def built() -> OnnxPromptClassifier:
    if not (FOLDER / "model.onnx").exists():
        pytest.skip("prompt_classifier is not built: run `pointsman build-classifier` (make setup does)")
    return OnnxPromptClassifier.from_folder(FOLDER)


def test_the_vague_prompt_is_one_the_lexical_analyser_is_unsure_of():
    lexical = LexicalAnalyzer()

    assert not lexical.is_confident(lexical.analyze(VAGUE))


def test_a_loaded_classifier_decides_the_prompts_the_lexical_analyser_is_unsure_of(built):
    classify = InProcessClassifier(built)

    result = TwoStageAnalyzer(LexicalAnalyzer(), classify).analyze(VAGUE)

    assert classify.loaded
    assert result.analyzer in ("classifier", "lexical>classifier")


def test_a_classifier_that_cannot_load_leaves_auto_on_the_lexical_path_and_says_why(tmp_path, caplog):
    with caplog.at_level(logging.ERROR, logger="pointsman.policy.analysis.in_process"):
        classify = InProcessClassifier.load(tmp_path / "missing")

    result = TwoStageAnalyzer(LexicalAnalyzer(), classify).analyze(VAGUE)

    assert not classify.loaded and classify.load_error
    assert result.analyzer == "lexical (classifier not loaded)"
    assert result == replace(LexicalAnalyzer().analyze(VAGUE), analyzer="lexical (classifier not loaded)")
    assert str(tmp_path / "missing") in caplog.text and "lexical analysis only" in caplog.text


def test_a_classifier_failing_on_a_prompt_falls_back_to_lexical_for_that_prompt_and_logs_it(built, caplog):
    broken = OnnxPromptClassifier.__new__(OnnxPromptClassifier)
    broken.tokenizer, broken.session = built.tokenizer, _BrokenSession()
    analyzer = TwoStageAnalyzer(LexicalAnalyzer(), InProcessClassifier(broken))

    with caplog.at_level(logging.WARNING, logger="pointsman.policy.analysis.classifier"):
        result = analyzer.analyze(VAGUE)

    assert result.analyzer == "lexical (classifier unavailable)"
    assert result.task == LexicalAnalyzer().analyze(VAGUE).task
    assert "prompt classifier call failed" in caplog.text and "RUNTIME_EXCEPTION" in caplog.text


def test_load_passes_the_thread_count_to_the_session(tmp_path):
    seen = {}

    def opener(folder, threads):
        seen.update(folder=folder, threads=threads)
        return "model"

    classify = InProcessClassifier.load(tmp_path, threads=2, opener=opener)

    assert classify.loaded and seen == {"folder": tmp_path, "threads": 2}
