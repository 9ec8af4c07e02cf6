"""Next-token choice: greedy, or temperature / top-k / top-p sampling with a seeded generator.

    sampler = Sampler(SamplingParams(temperature=0.8, top_k=40, seed=7))
    token = sampler.choose(logits)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings of one request; temperature 0 means greedy."""

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0 or self.top_k == 1


class Sampler:
    """Chooses tokens for one sequence; the same seed gives the same choices."""

    def __init__(self, params: SamplingParams) -> None:
        self.params = params
        self._rng = np.random.default_rng(params.seed)

    def choose(self, logits: np.ndarray) -> int:
        """Return the next token id from a 1-D logits vector."""
        if self.params.greedy:
            return int(np.argmax(logits))
        probs = filtered_probabilities(logits, self.params)
        return int(self._rng.choice(probs.shape[0], p=probs))


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
