"""Random-weight checkpoints of every supported family, built in process (tests and benchmarks).

    tokenizer = family_tokenizer(Path("build/tok"))
    build_checkpoint("llama", tokenizer, Path("build/ckpt/llama"), width=64, layers=2)

No weights are downloaded: the configs are transformers' own classes, filled with small
shapes and the features each family exercises (grouped-query attention, rope scaling,
tied or untied embeddings, a BOS prefix, several end-of-sequence ids).
"""

from __future__ import annotations

from pathlib import Path

BOS, EOS, END_OF_TURN = "<s>", "</s>", "<|end|>"
TRAINING_TEXT = [
    "def add(a, b):\n    return a + b\n",
    "The quick brown fox jumps over the lazy dog.\n",
    "for i in range(10):\n    print(i * i)\n",
    "Paris is the capital of France. Berlin is the capital of Germany.\n",
    "Once upon a time there was a small model that answered questions.\n",
] * 4


def family_tokenizer(out: Path, vocab_size: int = 512, add_bos: bool = False):
    """A byte-level BPE tokenizer with BOS, EOS and an end-of-turn token (a second EOS).

    add_bos=True makes it prepend BOS to every prompt, as Llama's tokenizer config does.
    """
    from tokenizers import ByteLevelBPETokenizer, processors
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(TRAINING_TEXT, vocab_size=vocab_size, min_frequency=2,
                            special_tokens=[EOS, BOS, END_OF_TURN], show_progress=False)
    backend = bpe._tokenizer
    if add_bos:
        bos_id = backend.token_to_id(BOS)
        backend.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=BOS, eos_token=EOS, unk_token=EOS,
                                        pad_token=EOS)
    tokenizer.save_pretrained(out)
    return tokenizer


def family_config(family: str, vocab_size: int, width: int = 64, layers: int = 2, heads: int = 4,
                  kv_heads: int = 2, context: int = 128, bos_id: int = 0, eos_id: int = 0,
                  initializer_range: float = 0.2):
    """A transformers config of `family` with these shapes and the family's characteristic features.

    The wide default init suits tiny test models; deep benchmark models take transformers'
    own 0.02, whose activations stay in a range where float32 parity holds.
    """
    from transformers import (
        CodeGenConfig,
        GPT2Config,
        GPTNeoXConfig,
        LlamaConfig,
        MistralConfig,
        Phi3Config,
        Qwen2Config,
    )

    head_dim = width // heads
    # a wide init: with the default one, a tied random model's residual stream is mostly the
    # input embedding and greedy decoding just repeats the last token
    special = dict(vocab_size=vocab_size, bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=eos_id,
                   initializer_range=initializer_range)
    gpt = dict(n_positions=context, n_embd=width, n_layer=layers, n_head=heads, **special)
    rotary = dict(hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads,
                  intermediate_size=4 * width, max_position_embeddings=context, **special)
    if family == "gpt2":  # learned positions, tied embeddings
        return GPT2Config(**gpt)
    if family == "codegen":  # partial rotary, fused qkv
        return CodeGenConfig(n_ctx=context, rotary_dim=head_dim // 2, **gpt)
    if family == "gpt_neox":  # partial rotary, parallel residual, untied
        return GPTNeoXConfig(rotary_pct=0.25, use_parallel_residual=True, tie_word_embeddings=False, **rotary)
    if family == "llama":  # GQA, llama3 rope scaling, untied
        return LlamaConfig(num_key_value_heads=kv_heads, tie_word_embeddings=False, rope_parameters={
            "rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": context // 4}, **rotary)
    if family == "mistral":  # GQA, sliding window shorter than the context
        return MistralConfig(num_key_value_heads=kv_heads, sliding_window=context // 4, tie_word_embeddings=False,
                             **rotary)
    if family == "qwen2":  # GQA down to one KV head, qkv bias, linear rope scaling, tied
        return Qwen2Config(num_key_value_heads=1, tie_word_embeddings=True, rope_parameters={
            "rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}, **rotary)
    if family == "phi3":  # fused qkv, longrope (the served context stops at the original length)
        half = head_dim // 2
        rotary["max_position_embeddings"] = 2 * context
        return Phi3Config(num_key_value_heads=kv_heads, tie_word_embeddings=False,
                          original_max_position_embeddings=context, rope_parameters={
                              "rope_type": "longrope", "rope_theta": 10000.0,
                              "short_factor": [1.0 + i / half for i in range(half)],
                              "long_factor": [2.0 + i / half for i in range(half)],
                              "original_max_position_embeddings": context}, **rotary)
    raise ValueError(f"unknown family {family!r}")


def build_checkpoint(family: str, tokenizer, out: Path, seed: int = 0, eos_ids: tuple[int, ...] = (),
                     logit_scale: float = 4.0, vocab_size: int | None = None, **shape) -> Path:
    """Save a seeded random model of `family` with the tokenizer; eos_ids go to generation_config.json.

    vocab_size: a head wider than the tokenizer (ids past it decode to nothing), for the
    cost of a real checkpoint's vocabulary; default the tokenizer's own.
    """
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    bos = tokenizer.convert_tokens_to_ids(BOS)
    eos = tokenizer.eos_token_id
    config = family_config(family, vocab_size or len(tokenizer), bos_id=bos, eos_id=eos, **shape)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    with torch.no_grad():  # wider logits than the default init, so greedy choices are not near-ties
        _final_norm(model).weight.mul_(logit_scale)
    model.generation_config = GenerationConfig(bos_token_id=bos, eos_token_id=list(eos_ids) or eos,
                                               pad_token_id=eos)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _final_norm(model):
    """The norm before the output embeddings (scaling it scales the logits, tied or not)."""
    decoder = model.get_decoder()
    for name in ("ln_f", "norm", "final_layer_norm"):
        if hasattr(decoder, name):
            return getattr(decoder, name)
    raise ValueError(f"no final norm found in {type(decoder).__name__}")
