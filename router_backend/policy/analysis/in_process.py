"""The prompt classifier run inside the router's own process: no BLS hop on the decision path.

    classify = InProcessClassifier.load(Path("model_repository/prompt_classifier/1"))
    TwoStageAnalyzer(LexicalAnalyzer(), classify).analyze("hello there").analyzer  # 'classifier'

Through a BLS call to the served `prompt_classifier`, a classifier decision cost about
3 ms more than in process, which put the router's p99 over its 8 ms target. The router
and `recommend` now load the same files the served model uses (graph, tokenizer, head,
character n-grams) at initialize. The served model stays for direct callers.

A classifier that cannot load leaves the router on the lexical path ("lexical (classifier
not loaded)"); one that fails on a prompt raises, and TwoStageAnalyzer answers that prompt
from the lexical analysis ("lexical (classifier unavailable)"). Either way the request is
served, the log says why, and the analyser name is counted in the router's metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from pointsman.policy.analysis.base import PromptAnalysis
from pointsman.policy.analysis.classifier import OnnxPromptClassifier

LOGGER = logging.getLogger(__name__)


class InProcessClassifier:
    """A classify(prompt) callable over an onnxruntime session; returns None if the model never loaded."""

    def __init__(self, model: OnnxPromptClassifier | None, load_error: str | None = None) -> None:
        self.model = model
        self.load_error = load_error

    @classmethod
    def load(cls, folder: Path, threads: int = 1,
             opener: Callable[..., OnnxPromptClassifier] = OnnxPromptClassifier.from_folder) -> InProcessClassifier:
        """Open the classifier in `folder`; on failure, log it and serve the lexical path instead of refusing."""
        try:
            model = opener(folder, threads=threads)
        except Exception as exc:  # noqa: BLE001 - the router must start without it: auto falls back to lexical
            LOGGER.error("prompt classifier in %s could not be loaded (%s); auto decisions use the lexical "
                         "analysis only (run `pointsman build-classifier`)", folder, exc)
            return cls(None, load_error=str(exc))
        LOGGER.info("prompt classifier loaded in process from %s (%d intra-op threads)", folder, threads)
        return cls(model)

    @property
    def loaded(self) -> bool:
        return self.model is not None

    def __call__(self, prompt: str) -> PromptAnalysis | None:
        if self.model is None:
            return None
        return self.model.analyze(prompt)
