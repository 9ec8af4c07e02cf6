"""Switchyard: model selection policy and generation engine, importable without Triton.

    from router_backend.catalog import load_catalog
    catalog = load_catalog()
"""
