"""Model selection policy: live status, scoring, manual/auto/hybrid selection, recommendation.

    board = StatusBoard(catalog)
    decision = Selector(catalog, board, analyzer).select(parse_router({"text_input": "def f():"}))
"""
