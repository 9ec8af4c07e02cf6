"""The served `prompt_classifier`, for the router that keeps it alive: a probe its stub refuses on sight.

    watch = TwinWatch(health, [MODEL], probe_classifier_via_bls)   # a dead stub is marked, then reloaded

The router classifies in its own process (pointsman.policy.analysis.in_process), so it no
longer calls this model. The model stays served for direct callers (README, its model.py),
and Triton 2.51 neither restarts a dead stub nor reports it as not ready: the router probes
it and its ModelKeeper reloads it, as it does for the twins.
"""

from __future__ import annotations

import numpy as np
import triton_python_backend_utils as pb_utils

from pointsman.triton_adapters.bls import error_of

MODEL = "prompt_classifier"


def probe_classifier_via_bls(model: str = MODEL) -> str | None:
    """Send an empty prompt, which a live classifier refuses without running the encoder; return the error.

    A live stub answers "invalid 'text_input': must be a non-empty string"; a dead one,
    Triton's "Stub process 'prompt_classifier_0_0' is not healthy." None: no error at all.
    """
    text = pb_utils.Tensor("text_input", np.array([[b""]], dtype=np.object_))  # [batch 1, 1]: the model batches
    return error_of(pb_utils.InferenceRequest(model_name=model, inputs=[text], requested_output_names=[]))
