"""Triton adapter of the prompt classifier (committed; the graph and tokenizer are generated).

    curl -X POST localhost:8000/v2/models/prompt_classifier/infer \
      -d '{"inputs":[{"name":"text_input","datatype":"BYTES","shape":[1,1],"data":["def add(a, b):"]}]}'

Triton's dynamic batcher hands execute() the prompts of concurrent requests together;
they run as one onnxruntime batch (pointsman.policy.analysis.classifier).

For direct callers: the router and `recommend` run the same files in their own process
(pointsman.policy.analysis.in_process), because a BLS call here added about 3 ms to the
auto decision. The router probes this model and has a dead stub reloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from pointsman.errors import InvalidRequest
from pointsman.policy.analysis.base import TASKS
from pointsman.policy.analysis.classifier import OnnxPromptClassifier
from pointsman.triton_adapters.triton_io import model_parameters, to_triton_error


def _texts(request) -> list[str]:
    tensor = pb_utils.get_input_tensor_by_name(request, "text_input")
    if tensor is None:
        raise InvalidRequest("text_input", "is required: a non-empty string")
    texts = [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v)
             for v in tensor.as_numpy().reshape(-1)]
    if not texts or any(not t.strip() for t in texts):
        raise InvalidRequest("text_input", "must be a non-empty string")
    return texts


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        # batching is the point of this model: refuse a config that turned it off
        if int(config.get("max_batch_size", 0)) <= 0 or "dynamic_batching" not in config:
            raise pb_utils.TritonModelException(f"{args['model_name']} needs max_batch_size > 0 and dynamic_batching")
        params = model_parameters(config)
        if params.get("tasks", ",".join(TASKS)) != ",".join(TASKS):
            raise pb_utils.TritonModelException(f"config tasks {params['tasks']!r} differ from {','.join(TASKS)!r}")
        folder = Path(args["model_repository"]) / args["model_version"]
        self.classifier = OnnxPromptClassifier(folder / params.get("onnx_file", "model.onnx"),
                                               folder / params.get("tokenizer_file", "tokenizer.json"),
                                               threads=int(params.get("intra_op_threads", "1")))

    def execute(self, requests: list) -> list:
        responses: list = [None] * len(requests)
        texts, owners = [], []  # owners[i]: (request index, prompts of that request)
        for index, request in enumerate(requests):
            try:
                batch = _texts(request)
            except Exception as exc:  # noqa: BLE001 - reported to this request, others go on
                responses[index] = pb_utils.InferenceResponse(error=to_triton_error(exc))
                continue
            owners.append((index, len(batch)))
            texts.extend(batch)
        try:
            probabilities, complexity = self.classifier.predict(texts)
        except Exception as exc:  # noqa: BLE001 - every waiting request hears of it
            error = to_triton_error(exc)
            return [r or pb_utils.InferenceResponse(error=error) for r in responses]
        start = 0
        for index, count in owners:
            probs = probabilities[start:start + count].astype(np.float32)
            tasks = np.array([[TASKS[i].encode()] for i in probs.argmax(1)], dtype=np.object_)
            responses[index] = pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("probabilities", probs),
                pb_utils.Tensor("complexity", complexity[start:start + count].reshape(-1, 1).astype(np.float32)),
                pb_utils.Tensor("task", tasks),
            ])
            start += count
        return responses
