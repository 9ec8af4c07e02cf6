"""Pointsman: multi-model LLM serving on Triton; this package is installed as `pointsman`.

    from pointsman.policy.contract import parse_router
    params = parse_router({"text_input": "def f():", "auto_select": True})

Where things are (each folder's docstring says more):
- engine/: the generation engine (tokenizer, ONNX decoder, in-flight batching);
- policy/: the request contract, prompt analysis, model selection and routing;
- ops/: usage analytics and A/B experiments;
- triton_adapters/: the only modules that import triton_python_backend_utils;
- backends/pointsman_llm/: the language models' Python-based backend (its model.py);
- launcher/: tritonserver with this repository, and the `pointsman` command.
engine, policy and ops import no Triton code.
"""
