"""Thin Triton adapters: tensors in, package calls, tensors out.

With the model.py files of model_repository/ and backends/pointsman_llm/, these are the
only modules that import triton_python_backend_utils (model_config.py does not need it:
Triton hands its config object in).
"""
