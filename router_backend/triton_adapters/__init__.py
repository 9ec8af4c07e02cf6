"""Thin Triton adapters: tensors in, package calls, tensors out. Only these import pb_utils."""
