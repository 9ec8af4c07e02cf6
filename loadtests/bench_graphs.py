r"""Exported graphs of one checkpoint against each other, step by step in the same run.

    .venv/bin/python -m pointsman.loadtests.bench_graphs old/model.onnx new/model.onnx --prompt 32 512 \\
        --rebuild-binding --spinning

Each graph is opened with the engine's decoder (engine.decoder.load_decoder, the same
threads for all). For each prompt length every variant prefills the prompt, then the
variants take turns, one decoding step each, for `--steps` steps (greedy on token 5;
`--batch` sequences decoding together, the others forked from the prompt's cache):
drifting load on a shared machine lands on all of them alike. Printed per
variant: the median and 10th-percentile step time, the best prefill of `--rounds`, and
the ratio of the first variant's median to each one's (above 1x: faster than the first).
Extra variants of the last graph:
- `--rebuild-binding`: the I/O binding rebuilt every step (the engine before it kept it);
- `--spinning`: onnxruntime's intra-op threads spin within a step (the engine's
  intra_op_spinning on; off by default, since several models share the cores). Spinning threads would also slow the
  other variants down between their turns, so this one is measured apart: blocks of
  BLOCK steps, alternating with the last graph as the engine opens it, which is printed
  again from those blocks as the spinning variant's own baseline.
Nothing is modelled; every figure is a measured time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pointsman.engine.decoder import Decoder, default_threads, load_decoder, usable_cores

BLOCK = 20  # steps per block when a variant cannot take turns step by step (--spinning)


@dataclass
class Variant:
    label: str
    decoder: Decoder
    rebuild_binding: bool = False
    apart: bool = False  # measured in blocks against the last graph (its threads spin)


def _step(variant: Variant, slots: list) -> float:
    if variant.rebuild_binding:
        variant.decoder._step = None  # as before the binding was kept: a fresh one every step
    began = time.perf_counter()
    variant.decoder.decode_batch([(5, slot) for slot in slots])
    return time.perf_counter() - began


def _spinning_decoder(path: str, threads: int) -> Decoder:
    """The graph as the engine opens it with intra_op_spinning on."""
    from pointsman.engine.kv_buffer import InPlaceDecoder

    decoder = load_decoder(path, threads=threads, providers="cpu", spinning=True)
    if not isinstance(decoder, InPlaceDecoder):
        raise SystemExit(f"{path}: --spinning needs an in-place graph")
    return decoder


def variants(graphs: Sequence[str], threads: int, rebuild: bool, spinning: bool) -> list[Variant]:
    out = [Variant(str(g), load_decoder(str(g), threads=threads, providers="cpu")) for g in graphs]
    last = str(graphs[-1])
    if rebuild:
        out.append(Variant(f"{last} (binding rebuilt every step)", load_decoder(last, threads=threads,
                                                                               providers="cpu"), True))
    if spinning:
        out.append(Variant(f"{last} (intra-op spinning)", _spinning_decoder(last, threads), apart=True))
    return out


def _batch(decoder: Decoder, prompt: list[int], batch: int) -> list:
    first = decoder.prefill(prompt)[1]
    return [first] + [decoder.fork(first) for _ in range(batch - 1)]


def measure(runs: list[Variant], prompt: list[int], steps: int, rounds: int,
            batch: int = 1) -> dict[str, tuple[float, float, float]]:
    """Per variant label: (median step ms, p10 step ms, best prefill ms)."""
    prefill = {v.label: float("inf") for v in runs}
    for _ in range(rounds):
        for v in runs:
            began = time.perf_counter()
            _, slot = v.decoder.prefill(prompt)
            prefill[v.label] = min(prefill[v.label], time.perf_counter() - began)
            v.decoder.release(slot)
    slots = {v.label: _batch(v.decoder, prompt, batch) for v in runs}
    times: dict[str, list[float]] = {v.label: [] for v in runs}
    together = [v for v in runs if not v.apart]
    for _ in range(steps):
        for v in together:
            times[v.label].append(_step(v, slots[v.label]))
    reference = [v for v in together if not v.rebuild_binding][-1]  # the last graph as the engine runs it
    for v in [v for v in runs if v.apart]:
        times[f"{reference.label} (in blocks against the spinning row)"] = baseline = []
        prefill[f"{reference.label} (in blocks against the spinning row)"] = prefill[reference.label]
        for _ in range(max(1, steps // BLOCK)):
            baseline += [_step(reference, slots[reference.label]) for _ in range(BLOCK)]
            times[v.label] += [_step(v, slots[v.label]) for _ in range(BLOCK)]
    for v in runs:
        for slot in slots[v.label]:
            v.decoder.release(slot)
    return {label: (statistics.median(t) * 1e3, sorted(t)[len(t) // 10] * 1e3, prefill[label] * 1e3)
            for label, t in times.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pointsman.loadtests.bench_graphs",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("graphs", nargs="+", help="model.onnx files of the same checkpoint; the first is the baseline")
    parser.add_argument("--prompt", nargs="+", type=int, default=[32], help="prompt lengths (token ids 2, 3, ...)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="prefills per variant (the best counts)")
    parser.add_argument("--threads", type=int, help="default: the engine's rule for the first graph's size")
    parser.add_argument("--rebuild-binding", action="store_true")
    parser.add_argument("--spinning", action="store_true")
    parser.add_argument("--batch", type=int, default=1, help="sequences decoding together in each step")
    args = parser.parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    threads = args.threads or default_threads(Path(args.graphs[0]).stat().st_size, usable_cores())
    runs = variants(args.graphs, threads, args.rebuild_binding, args.spinning)
    table = Table(title=f"decoding step at batch {args.batch}, {args.steps} interleaved steps; {threads} threads")
    for column in ("prompt", "variant", "median step ms", "p10 step ms", "first/this", "best prefill ms",
                   "first/this"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for length in args.prompt:
        figures = measure(runs, [2 + i % 300 for i in range(length)], args.steps, args.rounds, args.batch)
        base = figures[runs[0].label]
        for label, (median, p10, prefill) in figures.items():
            table.add_row(str(length), label, f"{median:.2f}", f"{p10:.2f}", f"{base[0] / median:.2f}x",
                          f"{prefill:.1f}", f"{base[2] / prefill:.2f}x")
    Console(width=220).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
