"""Next-token choice: penalties, then greedy or temperature / top-k / top-p sampling with a seeded generator.

    sampler = Sampler(SamplingParams(temperature=0.8, top_k=40, seed=7, repetition_penalty=1.2))
    token = sampler.choose(logits, prompt_ids=(464, 3290), generated=(11,))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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
        self._history: TokenHistory | None = None
        self._prompt: Sequence[int] | None = None

    def choose(self, logits: np.ndarray, prompt_ids: Sequence[int] = (), generated: Sequence[int] = ()) -> int:
        """Return the next token id from a 1-D logits vector, given the tokens so far."""
        if self.params.adjusts_logits:
            logits = penalized_logits(logits, self.params, self._history_of(prompt_ids, generated))
        if self.params.greedy:
            return int(np.argmax(logits))
        ids, probs = sampling_support(logits, self.params)
        # drawn among the kept tokens only: the same draw as over the whole vocabulary with
        # zeros elsewhere (its cumulative sums are the same), without passes over every token
        pick = int(self._rng.choice(probs.shape[0], p=probs))
        return pick if ids is None else int(ids[pick])

    def _history_of(self, prompt_ids: Sequence[int], generated: Sequence[int]) -> TokenHistory:
        """The penalties' view of the tokens so far: the last call's, grown by the new tokens when it extends it.

        The engine calls with one request's prompt and its output list as it grows; any other
        call (another prompt, an output that does not extend the last one) starts afresh.
        """
        history = self._history
        if (history is None or prompt_ids is not self._prompt or len(generated) < history.length
                or (history.length and generated[history.length - 1] != history.last)):
            history, self._prompt = TokenHistory(prompt_ids), prompt_ids
            self._history = history
        for token in generated[history.length:]:
            history.add(int(token))
        return history


class TokenHistory:
    """A sequence's prompt and output as the penalties read them, grown one token at a time.

    Rebuilt at every step, the set of tokens seen (np.unique over prompt and output) cost
    a sort of every token so far, per row and per step; here a step adds its one token.
    """

    def __init__(self, prompt_ids: Sequence[int] = ()) -> None:
        unique = dict.fromkeys(int(token) for token in prompt_ids)
        self._seen_set = set(unique)
        self._seen = _Growing(np.int64, unique)  # prompt and output tokens, each once
        self._slots: dict[int, int] = {}  # output token -> its place in _output and _counts
        self._output = _Growing(np.int64)
        self._counts = _Growing(np.float64)  # times each output token was generated
        self.length = 0  # output tokens added
        self.last = -1  # the latest of them

    def add(self, token: int) -> None:
        """One more output token."""
        if token not in self._seen_set:
            self._seen_set.add(token)
            self._seen.append(token)
        slot = self._slots.get(token)
        if slot is None:
            self._slots[token] = self._output.size
            self._output.append(token)
            self._counts.append(1.0)
        else:
            self._counts.values[slot] += 1.0
        self.length += 1
        self.last = token

    @property
    def seen(self) -> np.ndarray:
        """Every token of prompt and output, once each."""
        return self._seen.values

    @property
    def output(self) -> tuple[np.ndarray, np.ndarray]:
        """The output's distinct tokens and how often each was generated."""
        return self._output.values, self._counts.values


class _Growing:
    """An append-only vector with amortised constant-time appends; `values` is a view of what it holds."""

    def __init__(self, dtype: type, values: Iterable[float] = ()) -> None:
        start = np.fromiter(values, dtype)
        self._data = np.empty(max(16, 2 * start.size), dtype)
        self._data[:start.size] = start
        self.size = start.size

    def append(self, value: float) -> None:
        if self.size == self._data.size:
            self._data = np.concatenate([self._data, np.empty_like(self._data)])
        self._data[self.size] = value
        self.size += 1

    @property
    def values(self) -> np.ndarray:
        return self._data[:self.size]


def penalized_logits(logits: np.ndarray, params: SamplingParams, history: TokenHistory) -> np.ndarray:
    """Apply the penalties and min_tokens to a copy of the logits, given the tokens so far.

    Repetition penalty as Hugging Face's RepetitionPenaltyLogitsProcessor (every token of
    prompt and output: positive logits divided, negative multiplied); presence and
    frequency as OpenAI defines them (output tokens only, subtracted).
    """
    out = logits.astype(np.float32, copy=True)
    if params.repetition_penalty != 1.0:
        seen = history.seen
        if seen.size:
            picked = out[seen]
            out[seen] = np.where(picked > 0, picked / params.repetition_penalty, picked * params.repetition_penalty)
    if (params.presence_penalty or params.frequency_penalty) and history.length:
        tokens, counts = history.output
        out[tokens] -= (params.frequency_penalty * counts + params.presence_penalty).astype(np.float32)
    if history.length < params.min_tokens and params.eos_ids:
        out[list(params.eos_ids)] = -np.inf
    return out


def sampling_support(logits: np.ndarray, params: SamplingParams) -> tuple[np.ndarray | None, np.ndarray]:
    """The tokens sampling may choose, in ascending id order (None: every token), and their probabilities.

    Top-k picks its tokens from the logits (the temperature keeps their order), so only they
    are scaled and exponentiated. Top-p sorts only the tokens that can be in its nucleus
    (see nucleus): sorting 150k tokens per row cost more than a decoding step. Each keeps
    ties with the last kept token's logit.
    """
    vocab = logits.shape[0]
    ids = None
    if 0 < params.top_k < vocab:
        kth = np.partition(logits, vocab - params.top_k)[vocab - params.top_k]
        ids = np.flatnonzero(logits >= kth)
        scaled = logits[ids].astype(np.float64)
    else:
        scaled = logits.astype(np.float64)
    scaled /= max(params.temperature, 1e-6)
    scaled -= scaled.max()
    probs = np.exp(scaled, out=scaled)
    probs /= probs.sum()
    if params.top_p < 1.0:
        kept = nucleus(probs, params.top_p)
        ids = kept if ids is None else ids[kept]
        probs = probs[kept]
        probs /= probs.sum()
    return ids, probs


SORTED_IDS = 4096  # a nucleus up to this size is put in id order by sorting, a longer one by a mask


def nucleus(probs: np.ndarray, top_p: float) -> np.ndarray:
    """Positions (ascending) of the smallest prefix, likeliest first, whose mass reaches top_p; at least one.

    The order is descending probability, ties by position, as a stable sort of the whole
    vector. Tokens less likely than (1 - top_p) / vocabulary hold less than 1 - top_p
    together, so the prefix lies among the others, which come first in that order: only
    they are sorted (everything, should rounding leave them short).
    """
    kept = None
    if probs.shape[0] > SORTED_IDS:  # a small vocabulary sorts faster than it is sifted
        likely = np.flatnonzero(probs >= (1.0 - top_p) / probs.shape[0])
        kept = _prefix(probs, likely, top_p) if likely.size < probs.shape[0] else None
    return kept if kept is not None else _prefix(probs, np.arange(probs.shape[0]), top_p, whole=True)


def _prefix(probs: np.ndarray, positions: np.ndarray, top_p: float, whole: bool = False) -> np.ndarray | None:
    order = positions[np.argsort(-probs[positions], kind="stable")]
    cutoff = int(np.searchsorted(np.cumsum(probs[order]), top_p)) + 1
    if cutoff > order.size and not whole:
        return None  # the positions fall short of top_p
    if cutoff <= SORTED_IDS:
        return np.sort(order[:cutoff])
    kept = np.zeros(probs.shape[0], dtype=bool)
    kept[order[:cutoff]] = True
    return np.flatnonzero(kept)
