"""Hugging Face checkpoint -> ONNX decoder -> Triton model folder.

    switchyard export --checkpoint build/checkpoints/gpt2 --name gpt2
    switchyard demo-models
"""
