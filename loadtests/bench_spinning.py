r"""intra_op_spinning on and off, for one model alone and for models decoding side by side.

    .venv/bin/python -m pointsman.loadtests.bench_spinning \
        build/bench-families/repository/llama-89M_stream/1/model.onnx --models 1 2 --rounds 2

Each of `--models` processes opens the graph as the engine does (engine.decoder.load_decoder,
the engine's thread rule), prefills a 32-token prompt, waits for the others, then times
`--steps` decoding steps at batch 1. Spinning off and on take turns, round by round. One
model alone shows what spinning saves; two at once on the same cores show what it costs
when models share them, which is why the engine's default is off. Printed: each process's
ms per step, and off/on (above 1x: spinning is faster). Nothing is modelled.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from collections.abc import Sequence


def _decode(path: str, spinning: bool, steps: int, start, out) -> None:
    from pointsman.engine.decoder import load_decoder

    decoder = load_decoder(path, spinning=spinning, providers="cpu")
    _, slot = decoder.prefill(list(range(2, 34)))
    start.wait()
    began = time.perf_counter()
    for _ in range(steps):
        _, slots = decoder.decode_batch([(5, slot)])
        slot = slots[0]
    out.put((time.perf_counter() - began) / steps * 1e3)


def side_by_side(path: str, models: int, spinning: bool, steps: int) -> list[float]:
    """The ms per step of each of `models` processes decoding at once."""
    context = multiprocessing.get_context("spawn")
    start, out = context.Barrier(models), context.Queue()
    processes = [context.Process(target=_decode, args=(path, spinning, steps, start, out)) for _ in range(models)]
    for process in processes:
        process.start()
    times = [out.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
    return sorted(times)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pointsman.loadtests.bench_spinning",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("graph", help="an in-place model.onnx")
    parser.add_argument("--models", nargs="+", type=int, default=[1, 2], help="processes decoding at once")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    for models in args.models:
        for round_ in range(1, args.rounds + 1):
            off = side_by_side(args.graph, models, False, args.steps)
            on = side_by_side(args.graph, models, True, args.steps)
            print(f"{models} model(s), round {round_}: ms/step off {[round(t, 2) for t in off]}, "  # noqa: T201
                  f"on {[round(t, 2) for t in on]}, off/on {statistics.mean(off) / statistics.mean(on):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
