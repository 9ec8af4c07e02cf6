"""In-flight batching benchmark: batching off vs on, concurrency 1, 4 and 16, per demo model.

    .venv/bin/python -m pointsman.loadtests.bench_engine
    .venv/bin/python -m pointsman.loadtests.bench_engine --models distilgpt2 --requests 16 --tokens 16

Runs the GenerationEngine on its own thread with the exported ONNX model, as the Triton
model does, without the server. N client threads each submit a streaming request
(ignore_eos, fixed new tokens), wait for it, and submit the next (a closed loop). Per-token
latency is the gap between consecutive streamed pieces seen by the sink; tokens/s is
every generated token over the wall time of the run. Every configuration runs once per
round, rounds interleaved; the best round counts (other work on a shared machine only
slows a round down). The bare decoder's step time at batch 1 and 16 is measured too: it
bounds what batching can give on this hardware. Targets (issue 4), batching on: tokens/s
at concurrency 16 >= 8x concurrency 1, per-token p50 at 16 <= 2x at 1.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pointsman.engine.decoder import Decoder, load_decoder
from pointsman.engine.scheduler import EngineLimits, GenerationEngine, GenerationRequest, GenerationResult
from pointsman.engine.tokenizer import TextTokenizer
from pointsman.export.repository import engine_name

MODELS = ("gpt2", "distilgpt2", "codegen")
PROMPTS = (
    "def add(a, b):",
    "Once upon a time, in a land far away,",
    "Q: what is the capital of France?\nA:",
    "import numpy as np\n\nclass Matrix:\n    def __init__(self, rows):",
    "The weather today",
    "Write a short poem about the sea and the wind that carries ships home",
)
TPS_TARGET = 8.0
P50_TARGET = 2.0


class TimingSink:
    """Records when each streamed piece arrives; wakes the client when the request ends."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.result: GenerationResult | None = None
        self.error: Exception | None = None
        self.done = threading.Event()

    def on_text(self, piece: str, tokens: int) -> None:
        self.times.append(time.perf_counter())

    def on_finish(self, result: GenerationResult) -> None:
        self.result = result
        self.done.set()

    def on_error(self, error: Exception) -> None:
        self.error = error
        self.done.set()

    def cancelled(self) -> bool:
        return False


@dataclass(frozen=True)
class Sample:
    """One closed-loop run of one configuration."""

    sinks: list[TimingSink]
    seconds: float
    mean_batch: float

    @property
    def tokens_per_s(self) -> float:
        return sum(s.result.tokens for s in self.sinks) / self.seconds


@dataclass(frozen=True)
class RunResult:
    """One configuration over every round: the least disturbed round's throughput and p50, pooled p99.

    On a shared machine other work only ever slows a round down, so the best round is the
    closest to what the engine itself can do (timeit's reasoning); p99 keeps every sample.
    """

    model: str
    batching: bool
    concurrency: int
    requests: int
    tokens_per_s: float  # best round
    p50_s: float  # per-token p50 of the best round (lowest)
    gaps: np.ndarray  # inter-token gaps in seconds, every round
    ttft: np.ndarray  # time to first token in seconds, every round
    mean_batch: float

    @classmethod
    def pool(cls, model: str, batching: bool, concurrency: int, samples: list[Sample]) -> RunResult:
        sinks = [s for sample in samples for s in sample.sinks]
        return cls(model=model, batching=batching, concurrency=concurrency, requests=len(sinks),
                   tokens_per_s=max(sample.tokens_per_s for sample in samples),
                   p50_s=min(float(np.median(np.concatenate([np.diff(s.times) for s in sample.sinks])))
                             for sample in samples),
                   gaps=np.concatenate([np.diff(s.times) for s in sinks]),
                   ttft=np.array([s.result.time_to_first_token_s for s in sinks]),
                   mean_batch=float(np.mean([sample.mean_batch for sample in samples])))

    def gap_ms(self, q: float) -> float:
        return self.p50_s * 1e3 if q == 50 else float(np.percentile(self.gaps, q) * 1e3)


def run_load(engine: GenerationEngine, prompts: Sequence[tuple[int, ...]], concurrency: int,
             per_client: int, tokens: int) -> tuple[list[TimingSink], float]:
    """Run a closed loop: each client thread sends per_client requests back to back."""
    sinks: list[list[TimingSink]] = [[] for _ in range(concurrency)]

    def client(index: int) -> None:
        for k in range(per_client):
            sink = TimingSink()
            prompt = prompts[(index + k * concurrency) % len(prompts)]
            engine.submit(GenerationRequest(prompt_ids=prompt, max_new_tokens=tokens, stream=True,
                                            ignore_eos=True), sink)
            if not sink.done.wait(120):
                raise TimeoutError("a benchmark request did not finish in 120 s")
            sinks[index].append(sink)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [s for per in sinks for s in per], time.perf_counter() - start


def measure(decoder: Decoder, tokenizer: TextTokenizer, prompts: Sequence[tuple[int, ...]], batching: bool,
            concurrency: int, requests: int, tokens: int) -> Sample:
    # eos_id None: every request makes exactly `tokens` tokens (ignore_eos as well)
    engine = GenerationEngine(decoder, tokenizer, None, EngineLimits(max_num_seqs=16, batching=batching))
    engine.start()
    try:
        run_load(engine, prompts, 1, 1, tokens)  # warm up
        warm = engine.stats()
        sinks, seconds = run_load(engine, prompts, concurrency, max(1, math.ceil(requests / concurrency)), tokens)
        stats = engine.stats()
    finally:
        engine.stop()
    failed = [s.error for s in sinks if s.error is not None]
    if failed:
        raise SystemExit(f"{len(failed)} requests failed, first: {failed[0]}")
    steps = stats.steps - warm.steps
    rows = stats.mean_batch * stats.steps - warm.mean_batch * warm.steps
    return Sample(sinks, seconds, rows / steps if steps else 0.0)


def decoder_steps(decoder: Decoder, prompts: Sequence[tuple[int, ...]], tokens: int, sizes: Sequence[int],
                  repeats: int = 15) -> dict[int, float]:
    """Time the bare decoder's step at each batch size, caches mid-generation: the hardware's bound."""
    seconds = {}
    for size in sizes:
        caches = [decoder.prefill(prompts[i % len(prompts)])[1] for i in range(size)]
        for _ in range(tokens // 2):
            _, caches = decoder.decode_batch([(1, cache) for cache in caches])
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            _, caches = decoder.decode_batch([(1, cache) for cache in caches])
            times.append(time.perf_counter() - start)
        for cache in caches:
            decoder.release(cache)
        seconds[size] = float(np.median(times))
    return seconds


def bench_model(name: str, repository: Path, concurrencies: Sequence[int], requests: int, tokens: int,
                threads: int, rounds: int) -> tuple[list[RunResult], dict[int, float]]:
    """Every configuration once per round, rounds interleaved so drifting load hits them alike."""
    folder = repository / engine_name(name) / "1"
    if not (folder / "model.onnx").exists():
        raise SystemExit(f"{folder / 'model.onnx'} is missing: run `make setup` first")
    decoder = load_decoder(str(folder / "model.onnx"), threads=threads, providers="cpu")
    tokenizer = TextTokenizer.from_file(str(folder / "tokenizer.json"))
    prompts = [tuple(tokenizer.encode(p)) for p in PROMPTS]
    configs = [(batching, c) for batching in (False, True) for c in concurrencies]
    samples: dict[tuple[bool, int], list[Sample]] = {config: [] for config in configs}
    steps: list[dict[int, float]] = []
    for _ in range(rounds):
        for batching, concurrency in configs:
            samples[batching, concurrency].append(
                measure(decoder, tokenizer, prompts, batching, concurrency, requests, tokens))
        steps.append(decoder_steps(decoder, prompts, tokens, concurrencies))
    step_s = {c: min(s[c] for s in steps) for c in concurrencies}
    return [RunResult.pool(name, batching, c, samples[batching, c]) for batching, c in configs], step_s


def ratios(results: list[RunResult], model: str, batching: bool, low: int, high: int) -> tuple[float, float]:
    """(tokens/s at high / at low, per-token p50 at high / at low)."""
    by_conc = {r.concurrency: r for r in results if r.model == model and r.batching == batching}
    return (by_conc[high].tokens_per_s / by_conc[low].tokens_per_s, by_conc[high].gap_ms(50) / by_conc[low].gap_ms(50))


def render(results: list[RunResult], steps: dict[str, dict[int, float]], low: int, high: int, tokens: int,
           rounds: int) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 150)
    table = Table(title=f"GenerationEngine, {tokens} new tokens per request, closed loop, best of {rounds} rounds "
                        f"for tokens/s and p50 ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f})")
    for column in ("model", "batching", "concurrency", "requests", "tokens/s", "p50 ms/token", "p99 ms/token",
                   "TTFT p50 ms", "mean batch"):
        table.add_column(column, justify="left" if column in ("model", "batching") else "right")
    for r in results:
        table.add_row(r.model, "on" if r.batching else "off", str(r.concurrency), str(r.requests),
                      f"{r.tokens_per_s:,.0f}", f"{r.gap_ms(50):.2f}", f"{r.gap_ms(99):.2f}",
                      f"{np.median(r.ttft) * 1e3:.1f}", f"{r.mean_batch:.2f}")
    console.print(table)
    if low == high:
        return
    summary = Table(title=f"concurrency {high} vs {low}: targets tokens/s >= {TPS_TARGET:g}x, "
                          f"per-token p50 <= {P50_TARGET:g}x (batching on)")
    for column in ("model", "batching", f"tokens/s c{high}/c{low}", f"p50 c{high}/c{low}", "targets",
                   f"bare decoder step ms b{low} / b{high}", "decoder bound tokens/s, step"):
        summary.add_column(column)
    for model in dict.fromkeys(r.model for r in results):
        step = steps[model]
        bound = f"{high * step[low] / step[high]:.2f}x, {step[high] / step[low]:.2f}x"
        for batching in (False, True):
            tps, p50 = ratios(results, model, batching, low, high)
            met = tps >= TPS_TARGET and p50 <= P50_TARGET
            verdict = ("[green]met[/]" if met else "[red]missed[/]") if batching else "(baseline)"
            summary.add_row(model, "on" if batching else "off", f"{tps:.2f}x", f"{p50:.2f}x", verdict,
                            f"{step[low] * 1e3:.2f} / {step[high] * 1e3:.2f}" if batching else "",
                            bound if batching else "")
    console.print(summary)
    console.print("decoder bound: what batching can give at best when one step of the bare decoder at batch "
                  f"{high} costs that much more than at batch {low} (prefill and scheduling come on top)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pointsman.loadtests.bench_engine",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated demo models")
    parser.add_argument("--concurrency", default="1,4,16", help="comma-separated client counts")
    parser.add_argument("--requests", type=int, default=32, help="requests per run and round, at least one per client")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions of every configuration")
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per request")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: up to 2)")
    parser.add_argument("--model-repository", type=Path, default=Path("model_repository"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    concurrencies = sorted({int(c) for c in args.concurrency.split(",")})
    results, steps = [], {}
    for name in (n.strip() for n in args.models.split(",")):
        model_results, steps[name] = bench_model(name, args.model_repository, concurrencies, args.requests,
                                                 args.tokens, args.threads, args.rounds)
        results += model_results
    render(results, steps, concurrencies[0], concurrencies[-1], args.tokens, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
