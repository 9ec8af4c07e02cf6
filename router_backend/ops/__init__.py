"""Operations, importable without Triton: usage analytics and A/B experiments."""
