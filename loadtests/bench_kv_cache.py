r"""The KV cache kept in place against the older concat graph: same checkpoint, threads and run.

    .venv/bin/python -m pointsman.loadtests.bench_kv_cache --models llama-89M gpt2-89M --prompts 32 512

Each random-weight checkpoint of loadtests.bench_families is exported twice: the default
in-place graph (GroupQueryAttention writing into a preallocated buffer bound as past and
present, engine.kv_buffer.InPlaceDecoder) and the concat graph (present = concat(past,
new), engine.decoder.OnnxDecoder), which copies every sequence's cache once per step.
For each prompt length it measures, alternating old and new round by round (drifting
load on a shared machine hits both alike) and keeping each one's best round:
- the raw greedy loop's ms per token at batch 1 (`--tokens` new tokens);
- one decoding step of a steady batch of `--batch` sequences with the prompt's cache.
It prints both and old/new ratios. Nothing is modelled.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pointsman.engine.decoder import Decoder, default_threads, load_decoder, usable_cores
from pointsman.loadtests.bench_families import SHAPES, WORK, prepare, prompt_ids, step_bound
from pointsman.loadtests.bench_serving import raw_generate

LAYOUTS = ("concat", "inplace")


def ms_per_token(decoder: Decoder, ids: Sequence[int], tokens: int) -> float:
    _, times = raw_generate(decoder, ids, tokens)
    return (times[-1] - times[0]) / (len(times) - 1) * 1e3


def batch_step_ms(decoder: Decoder, ids: Sequence[int], batch: int, steps: int = 6) -> float:
    """The fastest of `steps` decoding steps of `batch` sequences decoding together (after two warm-up steps)."""
    return batch / step_bound(decoder, ids, batch, steps) * 1e3  # step_bound is batch / the fastest step


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pointsman.loadtests.bench_kv_cache",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["llama-89M", "gpt2-89M"], choices=list(SHAPES))
    parser.add_argument("--prompts", nargs="+", type=int, default=[32, 512])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=WORK, help="bench_families' work folder (reused when present)")
    args = parser.parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"old (concat graph) vs new (in place) in one run; best of {args.rounds} alternating rounds")
    for column in ("model", "prompt", "threads", "c=1 ms/token old", "new", "old/new",
                   f"batch {args.batch} step ms old", "new", "old/new"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for name in args.models:
        folders = {layout: prepare(name, kv_cache=layout, work=args.work)[1] for layout in LAYOUTS}
        onnx = {layout: folders[layout] / "1" / "model.onnx" for layout in LAYOUTS}
        threads = default_threads(onnx["inplace"].stat().st_size, usable_cores())
        decoders = {layout: load_decoder(str(onnx[layout]), threads=threads, providers="cpu") for layout in LAYOUTS}
        for length in args.prompts:
            ids = prompt_ids(folders["inplace"], length)
            single = {layout: float("inf") for layout in LAYOUTS}
            step = dict(single)
            for _ in range(args.rounds):
                for layout, decoder in decoders.items():
                    single[layout] = min(single[layout], ms_per_token(decoder, ids, args.tokens))
                    step[layout] = min(step[layout], batch_step_ms(decoder, ids, args.batch))
            table.add_row(name, str(length), str(threads), f"{single['concat']:.2f}", f"{single['inplace']:.2f}",
                          f"{single['concat'] / single['inplace']:.2f}x", f"{step['concat']:.1f}",
                          f"{step['inplace']:.1f}", f"{step['concat'] / step['inplace']:.2f}x")
            print(f"{name} prompt {length}: c=1 {single}, batch {step}", file=sys.stderr, flush=True)  # noqa: T201
    Console(width=160, file=sys.stdout).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
