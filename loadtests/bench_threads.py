r"""The thread rule checked: the raw decoding loop at 1 thread and at every core, per model, same run.

    .venv/bin/python -m pointsman.loadtests.bench_threads model_repository/gpt2 \
        build/bench-families/repository/llama-89M

For each model folder, the greedy loop (the engine's decoder, one decode step per token) runs with
1 intra-op thread and with one per usable core, alternating run by run (drifting load on a
shared machine hits both alike); the best run of each counts. It prints ms/token, the
ratio and what engine.decoder.default_threads picks for the model.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pointsman.engine.decoder import Decoder, default_threads, load_decoder, usable_cores
from pointsman.loadtests.bench_serving import raw_generate


def ms_per_token(decoder: Decoder, prompt: Sequence[int], tokens: int) -> float:
    _, times = raw_generate(decoder, prompt, tokens)
    return (times[-1] - times[0]) / (len(times) - 1) * 1e3


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    cores = usable_cores()
    table = Table(title=f"raw loop ms/token, 1 thread vs {cores} (best of {args.rounds} alternating rounds)")
    for column in ("model", "MB", "1 thread", f"{cores} threads", "ratio 1/all", "rule picks"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for folder in args.folders:
        onnx = folder / "1" / "model.onnx"
        size = onnx.stat().st_size
        decoders = {n: load_decoder(str(onnx), threads=n, providers="cpu") for n in (1, cores)}
        prompt = list(range(1, 33))
        best = {n: float("inf") for n in decoders}
        for _ in range(args.rounds):
            for n, decoder in decoders.items():
                best[n] = min(best[n], ms_per_token(decoder, prompt, args.tokens))
        table.add_row(folder.name, f"{size / 2**20:.1f}", f"{best[1]:.2f}", f"{best[cores]:.2f}",
                      f"{best[1] / best[cores]:.2f}x", str(default_threads(size, cores)))
    Console(width=120, file=sys.stdout).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
