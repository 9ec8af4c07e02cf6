r"""The engine's work per decoding step on the host: log-probabilities and token choice, by vocabulary size.

    .venv/bin/python -m pointsman.loadtests.bench_sampling --vocab 385 32000 151936 --batch 1 16

After every decoding step the engine takes each row's log-probability of its token and,
for sampled requests, draws the token (engine.scheduler.token_logprobs, engine.sampling).
Both pass over the whole vocabulary, so their cost grows with it: the benchmark models
have 385 tokens, a Llama-2 or TinyLlama checkpoint 32,000 and Qwen2 151,936. Each case
times the current code against the code before this benchmark was written (kept below
as the baseline, unchanged), taking turns, on the same random logits, and prints the
median ms per step and before/now (above 1x the current code is faster).

Rows of logits are Gaussian times --scale: 4 gives a nucleus (top-p 0.9) of a few hundred
tokens, 0.5 one of most of the vocabulary, where top-p falls back to sorting all of it.
The size of the nucleus is printed. Nothing is modelled.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

from pointsman.engine.sampling import Sampler, SamplingParams, nucleus
from pointsman.engine.scheduler import token_logprob, token_logprobs

SAMPLED = SamplingParams(temperature=0.8, top_p=0.9, seed=1)


def before_token_logprobs(logits: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """The baseline: token_logprobs as of 0cd6f81 (float64 copies of every row)."""
    rows = logits.astype(np.float64)
    top = rows.max(axis=1, keepdims=True)
    norm = np.log(np.exp(rows - top).sum(axis=1))
    return rows[np.arange(len(tokens)), tokens] - top[:, 0] - norm


def before_choose(rng: np.random.Generator, logits: np.ndarray, params: SamplingParams) -> int:
    """The baseline: Sampler.choose as of 0cd6f81 (top-p sorts the whole vocabulary; the draw spans it)."""
    scaled = logits.astype(np.float64) / max(params.temperature, 1e-6)
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    order = np.argsort(-probs, kind="stable")
    cutoff = int(np.searchsorted(np.cumsum(probs[order]), params.top_p)) + 1
    kept = np.zeros_like(probs)
    kept[order[:cutoff]] = probs[order[:cutoff]]
    return int(rng.choice(kept.shape[0], p=kept / kept.sum()))


def greedy_step(logprobs: Callable) -> Callable[[np.ndarray], None]:
    """A step of greedy rows, as GenerationEngine._choose takes it: one argmax and one log-probability pass."""
    def step(logits: np.ndarray) -> None:
        logprobs(logits, np.argmax(logits, axis=1))
    return step


def sampled_step_now(logits: np.ndarray, samplers: list[Sampler]) -> None:
    for row, sampler in zip(logits, samplers, strict=True):
        token_logprob(row, sampler.choose(row))


def sampled_step_before(logits: np.ndarray, rngs: list[np.random.Generator]) -> None:
    for row, rng in zip(logits, rngs, strict=True):
        before_token_logprobs(row[None, :], np.asarray([before_choose(rng, row, SAMPLED)]))


def alternate(now: Callable[[], None], before: Callable[[], None], repeats: int) -> tuple[float, float]:
    """Median ms of each, taking turns."""
    times: dict[str, list[float]] = {"now": [], "before": []}
    for i in range(repeats):
        for label, run in (("now", now), ("before", before)) if i % 2 else (("before", before), ("now", now)):
            began = time.perf_counter()
            run()
            times[label].append((time.perf_counter() - began) * 1e3)
    return statistics.median(times["now"]), statistics.median(times["before"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pointsman.loadtests.bench_sampling",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab", nargs="+", type=int, default=[385, 32000, 151936])
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--scale", nargs="+", type=float, default=[4.0, 0.5])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    print("vocab  batch  scale  nucleus | greedy ms: now  before  before/now | sampled ms: now  before  "  # noqa: T201
          "before/now")
    for vocab in args.vocab:
        for batch in args.batch:
            for scale in args.scale:
                logits = (np.random.default_rng(vocab + batch).standard_normal((batch, vocab)) * scale).astype(
                    np.float32)
                row = logits[0].astype(np.float64) / SAMPLED.temperature
                probs = np.exp(row - row.max())
                kept = nucleus(probs / probs.sum(), SAMPLED.top_p).size
                g_now, g_before = alternate(lambda x=logits: greedy_step(token_logprobs)(x),
                                            lambda x=logits: greedy_step(before_token_logprobs)(x), args.repeats)
                samplers = [Sampler(SAMPLED) for _ in range(batch)]
                rngs = [np.random.default_rng(SAMPLED.seed) for _ in range(batch)]
                s_now, s_before = alternate(lambda x=logits, s=samplers: sampled_step_now(x, s),
                                            lambda x=logits, r=rngs: sampled_step_before(x, r), args.repeats)
                print(f"{vocab:6d} {batch:5d} {scale:6.1f} {kept:8d} | {g_now:14.3f} {g_before:7.3f} "  # noqa: T201
                      f"{g_before / g_now:10.2f}x | {s_now:15.3f} {s_before:7.3f} {s_before / s_now:10.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
