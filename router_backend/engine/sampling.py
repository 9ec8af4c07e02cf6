"""Next-token choice: penalties, then greedy or temperature / top-k / top-p sampling with a seeded generator.

    sampler = Sampler(SamplingParams(temperature=0.8, top_k=40, seed=7, repetition_penalty=1.2))
    token = sampler.choose(logits, prompt_ids=(464, 3290), generated=(11,))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings of one request; temperature 0 means greedy."""

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None
    repetition_penalty: float = 1.0  # > 0; 1 is off
    presence_penalty: float = 0.0  # -2..2, OpenAI's definition
    frequency_penalty: float = 0.0  # -2..2, OpenAI's definition
    min_tokens: int = 0  # end-of-sequence is not a choice before this many tokens
    eos_ids: tuple[int, ...] = ()  # what min_tokens suppresses

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0 or self.top_k == 1

    @property
    def adjusts_logits(self) -> bool:
        return (self.repetition_penalty != 1.0 or self.presence_penalty != 0.0 or self.frequency_penalty != 0.0
                or (self.min_tokens > 0 and bool(self.eos_ids)))


# penalties a model may set for requests that leave them out: field -> (accepted range, inclusive)
DEFAULTABLE = {"repetition_penalty": (1e-6, 100.0), "presence_penalty": (-2.0, 2.0),
               "frequency_penalty": (-2.0, 2.0)}
DEFAULT_PREFIX = "default_"  # config.pbtxt parameter default_repetition_penalty, ...


def model_defaults(parameters: Mapping[str, str]) -> dict[str, float]:
    """The penalties a model's config.pbtxt sets as defaults (default_<field>); a bad value is an error naming it.

    Small demo models loop on one token without a repetition penalty; a model sets its own
    here, and a request that names the field overrides it (1 or 0 turns it off).
    """
    defaults = {}
    for name, (low, high) in DEFAULTABLE.items():
        text = parameters.get(DEFAULT_PREFIX + name, "").strip()
        if not text:
            continue
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:
            raise ValueError(f"config parameter {DEFAULT_PREFIX + name} must be a number from "
                             f"{'above 0' if low > 0 else low} to {high} (got {text!r})")
        defaults[name] = value
    return defaults


class Sampler:
    """Chooses tokens for one sequence; the same seed gives the same choices."""

    def __init__(self, params: SamplingParams) -> None:
        self.params = params
        self._rng = np.random.default_rng(params.seed)

    def choose(self, logits: np.ndarray, prompt_ids: Sequence[int] = (), generated: Sequence[int] = ()) -> int:
        """Return the next token id from a 1-D logits vector, given the tokens so far."""
        if self.params.adjusts_logits:
            logits = adjusted_logits(logits, self.params, prompt_ids, generated)
        if self.params.greedy:
            return int(np.argmax(logits))
        probs = filtered_probabilities(logits, self.params)
        return int(self._rng.choice(probs.shape[0], p=probs))


def adjusted_logits(logits: np.ndarray, params: SamplingParams, prompt_ids: Sequence[int],
                    generated: Sequence[int]) -> np.ndarray:
    """Apply the penalties and min_tokens to a copy of the logits.

    Repetition penalty as Hugging Face's RepetitionPenaltyLogitsProcessor (every token of
    prompt and output: positive logits divided, negative multiplied); presence and
    frequency as OpenAI defines them (output tokens only, subtracted).
    """
    out = logits.astype(np.float32, copy=True)
    if params.repetition_penalty != 1.0:
        seen = np.unique(np.fromiter((*prompt_ids, *generated), dtype=np.int64))
        if seen.size:
            picked = out[seen]
            out[seen] = np.where(picked > 0, picked / params.repetition_penalty, picked * params.repetition_penalty)
    if (params.presence_penalty or params.frequency_penalty) and len(generated):
        tokens, counts = np.unique(np.asarray(generated, dtype=np.int64), return_counts=True)
        out[tokens] -= (params.frequency_penalty * counts + params.presence_penalty).astype(np.float32)
    if len(generated) < params.min_tokens and params.eos_ids:
        out[list(params.eos_ids)] = -np.inf
    return out


def filtered_probabilities(logits: np.ndarray, params: SamplingParams) -> np.ndarray:
    """Softmax at the temperature, restricted to the top-k and top-p (nucleus) tokens."""
    scaled = logits.astype(np.float64) / max(params.temperature, 1e-6)
    keep = np.ones(scaled.shape[0], dtype=bool)
    if 0 < params.top_k < scaled.shape[0]:
        kth = np.partition(scaled, -params.top_k)[-params.top_k]
        keep &= scaled >= kth
    scaled = np.where(keep, scaled, -np.inf)
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    if params.top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        cumulative = np.cumsum(probs[order])
        # keep the smallest prefix whose mass reaches top_p (always at least one token)
        cutoff = int(np.searchsorted(cumulative, params.top_p)) + 1
        nucleus = np.zeros_like(probs)
        nucleus[order[:cutoff]] = probs[order[:cutoff]]
        probs = nucleus / nucleus.sum()
    return probs
