"""Routing policy, importable without Triton: the request contract, prompt analysis, selection, routing.

    from pointsman.policy.contract import parse_router
    params = parse_router({"text_input": "def f():", "auto_select": True})
"""
