r"""The engine's work per decoding step on the host: log-probabilities and token choice, by vocabulary size.

    .venv/bin/python -m pointsman.loadtests.bench_sampling --vocab 385 32000 151936 --batch 1 16
    .venv/bin/python -m pointsman.loadtests.bench_sampling --vocab 32000 151936 --batch 16 --penalties

After every decoding step the engine takes each row's log-probability of its token and,
for sampled requests, draws the token (engine.scheduler.token_logprobs, engine.sampling).
Both pass over the whole vocabulary, so their cost grows with it: the benchmark models
have 385 tokens, a Llama-2 or TinyLlama checkpoint 32,000 and Qwen2 151,936. Each case
times the current code against the code before this benchmark was written (kept below
as the baseline, unchanged), taking turns, on the same random logits, and prints the
median ms per step and before/now (above 1x the current code is faster).

Greedy rows take an argmax and the log-probability; sampled rows a draw at temperature 0.8
and top-p 0.9 (--top-k adds a top-k), then the log-probability. Rows of logits are Gaussian
times --scale: 4 gives a nucleus of tens to a hundred tokens, 0.5 one of most of the
vocabulary, which top-p must still sort. The nucleus of the first row (top-p alone) is
printed. Nothing is modelled.

--penalties then times one greedy request under the demo models' penalties (repetition
1.2, presence and frequency 0.5) for 128 steps after a prompt of 32 and of 1,000 tokens:
the Sampler, which grows its TokenHistory a token a step, against the baseline's
penalties, which rebuilt the tokens seen from the whole prompt and output at every step.
It prints ms per step and whether both chose the same tokens.

--engine N then runs the engine itself (GenerationEngine, in process, 16 requests of 64
new tokens at once) on a random llama with a 32,000-token head, built and exported once
into --work, for N rounds sampled and N greedy, the baseline and the current code taking
turns, and prints tokens/s.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from pointsman.engine.sampling import Sampler, SamplingParams, nucleus
from pointsman.engine.scheduler import token_logprobs

TEMPERATURE, TOP_P = 0.8, 0.9  # the sampled rows' settings; --top-k adds a top-k


def before_token_logprobs(logits: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """The baseline: token_logprobs as of 0cd6f81 (float64 copies of every row)."""
    rows = logits.astype(np.float64)
    top = rows.max(axis=1, keepdims=True)
    norm = np.log(np.exp(rows - top).sum(axis=1))
    return rows[np.arange(len(tokens)), tokens] - top[:, 0] - norm


def before_choose(rng: np.random.Generator, logits: np.ndarray, params: SamplingParams) -> int:
    """The baseline: Sampler.choose without penalties as of 0cd6f81 (filtered_probabilities then a draw over all).

    Top-p sorted the whole vocabulary, and the draw spanned it.
    """
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
        cutoff = int(np.searchsorted(np.cumsum(probs[order]), params.top_p)) + 1
        nucleus_probs = np.zeros_like(probs)
        nucleus_probs[order[:cutoff]] = probs[order[:cutoff]]
        probs = nucleus_probs / nucleus_probs.sum()
    return int(rng.choice(probs.shape[0], p=probs))


def before_adjusted_logits(logits: np.ndarray, params: SamplingParams, prompt_ids: Sequence[int],
                           generated: Sequence[int]) -> np.ndarray:
    """The baseline: the penalties as of 5546e56, which rebuilt the tokens seen from prompt and output at every step."""
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


def greedy_step(logprobs: Callable) -> Callable[[np.ndarray], None]:
    """A step of greedy rows, as GenerationEngine._choose takes it: one argmax and one log-probability pass."""
    def step(logits: np.ndarray) -> None:
        logprobs(logits, np.argmax(logits, axis=1))
    return step


def sampled_step_now(logits: np.ndarray, samplers: list[Sampler]) -> None:
    """As GenerationEngine._choose: each row's draw, then the batch's log-probabilities in one pass."""
    token_logprobs(logits, np.asarray([sampler.choose(row) for row, sampler in zip(logits, samplers, strict=True)]))


def sampled_step_before(logits: np.ndarray, rngs: list[np.random.Generator], params: SamplingParams) -> None:
    for row, rng in zip(logits, rngs, strict=True):
        before_token_logprobs(row[None, :], np.asarray([before_choose(rng, row, params)]))


def alternate(now: Callable[[], None], before: Callable[[], None], repeats: int) -> tuple[float, float]:
    """Median ms of each, taking turns."""
    times: dict[str, list[float]] = {"now": [], "before": []}
    for i in range(repeats):
        for label, run in (("now", now), ("before", before)) if i % 2 else (("before", before), ("now", now)):
            began = time.perf_counter()
            run()
            times[label].append((time.perf_counter() - began) * 1e3)
    return statistics.median(times["now"]), statistics.median(times["before"])


PENALTIES = SamplingParams(repetition_penalty=1.2, presence_penalty=0.5, frequency_penalty=0.5)  # the demo models'


def penalty_rows(vocab: int, prompt: int, steps: int, repeats: int) -> tuple[float, float, bool]:
    """Median ms per step of one greedy request with the demo models' penalties: (now, before, same tokens).

    Each run decodes `steps` tokens from fixed random logits rows after a `prompt`-token
    prompt, now with the Sampler (which grows its TokenHistory a token a step) and before
    with the baseline's penalties and an argmax, taking turns.
    """
    rng = np.random.default_rng(vocab + prompt)
    rows = rng.standard_normal((steps, vocab)).astype(np.float32) * 4
    prompt_ids = tuple(int(t) for t in rng.integers(0, vocab, prompt))
    outputs: dict[str, list[int]] = {}

    def now() -> None:
        sampler, generated = Sampler(PENALTIES), []
        for row in rows:
            generated.append(sampler.choose(row, prompt_ids, generated))
        outputs["now"] = generated

    def before() -> None:
        generated: list[int] = []
        for row in rows:
            generated.append(int(np.argmax(before_adjusted_logits(row, PENALTIES, prompt_ids, generated))))
        outputs["before"] = generated

    now_ms, before_ms = alternate(now, before, repeats)
    return now_ms / steps, before_ms / steps, outputs["now"] == outputs["before"]


ENGINE_SHAPE = dict(width=512, layers=4, heads=8, kv_heads=4)  # a llama of 45 M parameters, 16 M of them the head
ENGINE_VOCAB = 32000
ENGINE_LOGIT_SCALE = 8.0  # the final norm's weight times this: a peaked next-token distribution, as trained ones are


def engine_model(work: Path) -> Path:
    """A random llama with a 32k vocabulary, built and exported once into `work`; its engine model folder."""
    import io

    from rich.console import Console

    from pointsman.export.pipeline import export_model
    from pointsman.export.random_checkpoints import build_checkpoint, family_tokenizer

    checkpoint = work / "checkpoint"
    if not (checkpoint / "config.json").exists():
        tokenizer = family_tokenizer(work / "tokenizer", add_bos=True)
        build_checkpoint("llama", tokenizer, checkpoint, logit_scale=ENGINE_LOGIT_SCALE, vocab_size=ENGINE_VOCAB,
                         context=1024, initializer_range=0.02, **ENGINE_SHAPE)
    export_model(checkpoint, "vocab32k", work / "repository", console=Console(file=io.StringIO()))
    return work / "repository" / "vocab32k_stream"


def engine_rounds(work: Path, rounds: int, concurrency: int = 16, tokens: int = 64) -> None:
    """GenerationEngine in process: tokens/s of `concurrency` requests, with the baseline host code swapped in by turns.

    The baseline goes in where the engine looks the functions up (scheduler.token_logprobs,
    Sampler.choose), so everything else (decoding steps, detokenizing) is the same code.
    """
    from pointsman.engine import sampling, scheduler
    from pointsman.engine.decoder import load_decoder
    from pointsman.engine.scheduler import GenerationEngine, GenerationRequest
    from pointsman.engine.tokenizer import TextTokenizer
    from pointsman.loadtests.bench_engine import TimingSink

    folder = engine_model(work)
    tokenizer = TextTokenizer.from_file(str(folder / "1" / "tokenizer.json"))
    decoder = load_decoder(str(folder / "1" / "model.onnx"), providers="cpu", spinning=True)
    engine = GenerationEngine(decoder, tokenizer, None)
    prompt = tuple(tokenizer.encode("def add(a, b):\n    return a + b\nWhat is the capital of France?")[:32])
    logits, slot = decoder.prefill(prompt)
    decoder.release(slot)
    probs = np.exp((logits - logits.max()) / TEMPERATURE)
    print(f"engine: llama {ENGINE_SHAPE}, vocabulary {ENGINE_VOCAB}, c={concurrency}, {tokens} new tokens; "  # noqa: T201
          f"first step's nucleus {nucleus(probs / probs.sum(), TOP_P).size} tokens")
    now = (scheduler.token_logprobs, sampling.Sampler.choose)

    def before_sampler_choose(self, logits, prompt_ids=(), generated=()):
        return int(np.argmax(logits)) if self.params.greedy else before_choose(self._rng, logits, self.params)

    def tokens_per_s(params: dict) -> float:
        sinks = [TimingSink() for _ in range(concurrency)]
        began = time.perf_counter()
        for i, sink in enumerate(sinks):
            request = GenerationRequest(prompt, tokens, ignore_eos=True,
                                        sampling=SamplingParams(**params, seed=i) if params else SamplingParams())
            engine.submit(request, sink)
        engine.run_until_idle()
        seconds = time.perf_counter() - began
        if failed := [sink.error for sink in sinks if sink.error is not None]:
            raise RuntimeError(f"{len(failed)} requests failed: {failed[0]}")
        return sum(sink.result.tokens for sink in sinks) / seconds

    for label, params in (("sampled", dict(temperature=TEMPERATURE, top_p=TOP_P)), ("greedy", {})):
        runs: dict[str, list[float]] = {"now": [], "before": []}
        try:
            for r in range(rounds):
                for which in ("before", "now") if r % 2 == 0 else ("now", "before"):
                    scheduler.token_logprobs, sampling.Sampler.choose = (
                        now if which == "now" else (before_token_logprobs, before_sampler_choose))
                    runs[which].append(tokens_per_s(params))
        finally:
            scheduler.token_logprobs, sampling.Sampler.choose = now
        ratios = [a / b for a, b in zip(runs["now"], runs["before"], strict=True)]
        print(f"  {label}: tokens/s now {' '.join(f'{v:.0f}' for v in runs['now'])}, before "  # noqa: T201
              f"{' '.join(f'{v:.0f}' for v in runs['before'])}; now/before median {statistics.median(ratios):.2f}x")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pointsman.loadtests.bench_sampling",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab", nargs="+", type=int, default=[385, 32000, 151936])
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--scale", nargs="+", type=float, default=[4.0, 0.5])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--top-k", type=int, default=0, help="sample from the top k as well (0: top-p alone)")
    parser.add_argument("--penalties", action="store_true",
                        help="then one penalised request's steps, now and before, per vocabulary and prompt length")
    parser.add_argument("--penalty-prompts", nargs="+", type=int, default=[32, 1000])
    parser.add_argument("--penalty-steps", type=int, default=128)
    parser.add_argument("--engine", type=int, default=0, metavar="ROUNDS",
                        help="then this many rounds of the engine itself on a 32k-vocabulary llama (0: none)")
    parser.add_argument("--work", type=Path, default=Path("build/bench-sampling"),
                        help="where --engine builds and exports its model once")
    args = parser.parse_args(argv)
    sampled = SamplingParams(temperature=TEMPERATURE, top_p=TOP_P, top_k=args.top_k, seed=1)
    print("vocab  batch  scale  nucleus | greedy ms: now  before  before/now | sampled ms: now  before  "  # noqa: T201
          "before/now")
    for vocab in args.vocab:
        for batch in args.batch:
            for scale in args.scale:
                logits = (np.random.default_rng(vocab + batch).standard_normal((batch, vocab)) * scale).astype(
                    np.float32)
                row = logits[0].astype(np.float64) / TEMPERATURE
                probs = np.exp(row - row.max())
                kept = nucleus(probs / probs.sum(), TOP_P).size  # top-p's alone, over the whole row
                g_now, g_before = alternate(lambda x=logits: greedy_step(token_logprobs)(x),
                                            lambda x=logits: greedy_step(before_token_logprobs)(x), args.repeats)
                samplers = [Sampler(sampled) for _ in range(batch)]
                rngs = [np.random.default_rng(sampled.seed) for _ in range(batch)]
                s_now, s_before = alternate(lambda x=logits, s=samplers: sampled_step_now(x, s),
                                            lambda x=logits, r=rngs: sampled_step_before(x, r, sampled), args.repeats)
                print(f"{vocab:6d} {batch:5d} {scale:6.1f} {kept:8d} | {g_now:14.3f} {g_before:7.3f} "  # noqa: T201
                      f"{g_before / g_now:10.2f}x | {s_now:15.3f} {s_before:7.3f} {s_before / s_now:10.2f}x")
    if args.penalties:
        print(f"penalties (the demo models': {PENALTIES.repetition_penalty} repetition, "  # noqa: T201
              f"{PENALTIES.presence_penalty} presence, {PENALTIES.frequency_penalty} frequency), one request, "
              f"{args.penalty_steps} steps")
        print("vocab  prompt | ms per step: now  before  before/now  same tokens")  # noqa: T201
        for vocab in args.vocab:
            for prompt in args.penalty_prompts:
                p_now, p_before, same = penalty_rows(vocab, prompt, args.penalty_steps, max(2, args.repeats // 5))
                print(f"{vocab:6d} {prompt:6d} | {p_now:16.3f} {p_before:7.3f} {p_before / p_now:10.2f}x  "  # noqa: T201
                      f"{'yes' if same else 'NO'}")
    if args.engine:
        engine_rounds(args.work, args.engine)
    return 0


if __name__ == "__main__":
    from pointsman.launcher.tritonserver import rerun_with_huge_pages

    rerun_with_huge_pages("pointsman.loadtests.bench_sampling")  # large arrays come from malloc as in the stubs
    raise SystemExit(main())
