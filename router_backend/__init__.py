"""Pointsman: model selection policy and generation engine, importable without Triton.

    from pointsman.policy.catalog import load_catalog
    catalog = load_catalog()
"""
