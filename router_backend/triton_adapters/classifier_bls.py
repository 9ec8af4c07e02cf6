"""The served prompt classifier as an analyser function: one BLS call to `prompt_classifier`.

    classify = BlsClassifier(is_ready=lambda: "prompt_classifier" in poller.ready_names)
    TwoStageAnalyzer(LexicalAnalyzer(), classify=classify)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import triton_python_backend_utils as pb_utils

from pointsman.policy.analysis import PromptAnalysis, analysis_from_outputs
from pointsman.triton_adapters.bls import BlsError

MODEL = "prompt_classifier"


class BlsClassifier:
    """Returns the classifier's analysis, or None while the model is not loaded."""

    def __init__(self, is_ready: Callable[[], bool]) -> None:
        self.is_ready = is_ready

    def __call__(self, prompt: str) -> PromptAnalysis | None:
        if not self.is_ready():
            return None
        text = pb_utils.Tensor("text_input", np.array([[prompt.encode("utf-8")]], dtype=np.object_))
        request = pb_utils.InferenceRequest(model_name=MODEL, inputs=[text],
                                            requested_output_names=["probabilities", "complexity"])
        response = request.exec()
        if response.has_error():
            raise BlsError(MODEL, response.error().message())
        return analysis_from_outputs(pb_utils.get_output_tensor_by_name(response, "probabilities").as_numpy(),
                                     pb_utils.get_output_tensor_by_name(response, "complexity").as_numpy())
