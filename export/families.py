"""What export needs to know about a checkpoint's family: support, context length, BOS and EOS.

    check_supported(config)                    # ValueError naming the supported model types
    context_length(config)                     # positions the served graph is exact for
    end_of_sequence_ids(checkpoint, config, tokenizer)   # (2, 32000, ...) from generation_config.json

The graph itself is traced from the transformers model (export.onnx_export); these rules
are the parts a checkpoint declares in its configs rather than in its weights.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

SUPPORTED_MODEL_TYPES = ("gpt2", "codegen", "gpt_neox", "llama", "mistral", "qwen2", "phi3")
# rope types whose frequencies depend on the sequence length at run time: transformers picks
# them from the batch's longest position, which would make a sequence's output depend on its
# batch neighbours. The served context stops where these rules would switch.
LENGTH_DEPENDENT_ROPE = ("dynamic", "longrope")
_CONTEXT_ATTRIBUTES = ("max_position_embeddings", "n_positions", "n_ctx")


def check_supported(config, where: Path | str = "checkpoint") -> None:
    """Refuse any model_type the exporter has not been proven on (tests/export, tests/integration)."""
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(f"{where}: model_type {config.model_type!r} is not supported "
                         f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)})")


def rope_type(config) -> str:
    """The config's rope type ('default' when it declares none or is not a rotary model)."""
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    return str(params.get("rope_type") or params.get("type") or "default")


def context_length(config) -> int:
    """Positions the model serves: the config's, capped where a length-dependent rope would switch."""
    length = next((int(v) for a in _CONTEXT_ATTRIBUTES if (v := getattr(config, a, None))), None)
    if length is None:
        raise ValueError(f"config of model_type {config.model_type!r} declares no context length "
                         f"({', '.join(_CONTEXT_ATTRIBUTES)})")
    if any(kind in rope_type(config) for kind in LENGTH_DEPENDENT_ROPE):
        params = getattr(config, "rope_parameters", None) or {}
        original = params.get("original_max_position_embeddings") or getattr(
            config, "original_max_position_embeddings", None)
        if original:
            length = min(length, int(original))
    return length


def _as_ids(value) -> list[int]:
    if value is None:
        return []
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        return [int(v) for v in value]
    return [int(value)]


def end_of_sequence_ids(checkpoint: Path, config, tokenizer) -> tuple[int, ...]:
    """Every id that ends generation: generation_config.json first (often a list), then config, tokenizer."""
    ids: list[int] = []
    generation = checkpoint / "generation_config.json"
    if generation.exists():
        ids += _as_ids(json.loads(generation.read_text()).get("eos_token_id"))
    ids += _as_ids(getattr(config, "eos_token_id", None))
    ids += _as_ids(tokenizer.eos_token_id)
    unique = tuple(dict.fromkeys(ids))
    if not unique:
        raise ValueError(f"{checkpoint}: no eos_token_id in generation_config.json, config.json or the tokenizer")
    return unique


def generation_defaults(checkpoint: Path) -> dict[str, float]:
    """The checkpoint's own repetition penalty (generation_config.json), served as the model's default."""
    generation = checkpoint / "generation_config.json"
    if not generation.exists():
        return {}
    penalty = json.loads(generation.read_text()).get("repetition_penalty")
    return {"repetition_penalty": float(penalty)} if isinstance(penalty, int | float) and penalty != 1.0 else {}


def bos_prefix(tokenizer, tokenizer_json: Path, sample: str = "Hello world") -> int | None:
    """The id the checkpoint's tokenizer puts before a prompt, or None.

    The engine encodes with the `tokenizers` library alone, without special tokens, and
    prepends this id itself, so it follows the tokenizer config (add_bos_token) exactly.
    """
    from tokenizers import Tokenizer

    plain = Tokenizer.from_file(str(tokenizer_json)).encode(sample, add_special_tokens=False).ids
    full = list(tokenizer(sample)["input_ids"])
    if full == plain:
        return None
    if full[1:] == plain:
        return int(full[0])
    if full[:len(plain)] == plain or full[1:1 + len(plain)] == plain:
        # special tokens after the prompt (an EOS appended by add_eos_token) make no sense
        # for a prompt to continue: the engine keeps only a leading BOS
        return int(full[0]) if full[0] != plain[0] else None
    raise ValueError(f"the tokenizer's special-token template is not a BOS prefix "
                     f"({full[:8]}... for {plain[:8]}...); export supports none or a leading BOS")
