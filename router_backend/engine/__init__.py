"""Generation engine: tokenizer + decoder + in-flight batched decoding loop, no Triton import.

    engine = GenerationEngine(decoder, tokenizer, eos_id=0, limits=EngineLimits())
    engine.submit(GenerationRequest(prompt_ids=[1, 2], max_new_tokens=8), sink)
"""
