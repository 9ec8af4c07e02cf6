"""The served prompt classifier as an analyser function: one BLS call to `prompt_classifier`.

    classify = BlsClassifier(is_ready=lambda: "prompt_classifier" in poller.ready_names, health=health)
    TwoStageAnalyzer(LexicalAnalyzer(), classify=classify)

A failed call raises (the analyser falls back to the lexical path) and is reported to the
health registry, which has a dead classifier reloaded. The call is bounded by TIMEOUT_S:
a call in flight when the stub dies would otherwise never return.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import triton_python_backend_utils as pb_utils

from pointsman.policy.analysis import PromptAnalysis, analysis_from_outputs
from pointsman.policy.call_guard import guarded
from pointsman.policy.health import HealthRegistry, is_dead_stub
from pointsman.triton_adapters.bls import BlsError

MODEL = "prompt_classifier"
TIMEOUT_S = 2.0


class BlsClassifier:
    """Returns the classifier's analysis, or None while the model is not loaded."""

    def __init__(self, is_ready: Callable[[], bool], health: HealthRegistry | None = None) -> None:
        self.is_ready = is_ready
        self.health = health or HealthRegistry()

    def __call__(self, prompt: str) -> PromptAnalysis | None:
        if not self.is_ready() or not self.health.available(MODEL):
            return None
        try:
            outputs = next(guarded(lambda stop: iter([self._call(prompt)]), deadline=time.monotonic() + TIMEOUT_S,
                                   is_dead=lambda: None, deadline_note=f"{TIMEOUT_S:g} s (the classifier)"))
        except Exception as exc:
            if is_dead_stub(str(exc)):  # slow under load is not broken: only a dead stub gets it reloaded
                self.health.record_failure(MODEL, str(exc))
            raise
        self.health.record_success(MODEL)
        return analysis_from_outputs(*outputs)

    @staticmethod
    def _call(prompt: str):
        text = pb_utils.Tensor("text_input", np.array([[prompt.encode("utf-8")]], dtype=np.object_))
        request = pb_utils.InferenceRequest(model_name=MODEL, inputs=[text],
                                            requested_output_names=["probabilities", "complexity"])
        response = request.exec()
        if response.has_error():
            raise BlsError(MODEL, response.error().message())
        return (pb_utils.get_output_tensor_by_name(response, "probabilities").as_numpy(),
                pb_utils.get_output_tensor_by_name(response, "complexity").as_numpy())
