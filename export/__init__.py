"""Hugging Face checkpoint -> ONNX decoder -> Triton model folder.

    pointsman export --checkpoint build/checkpoints/gpt2 --name gpt2
    pointsman demo-models
"""
