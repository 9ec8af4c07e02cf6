"""Selection decision time in process: p50/p99 over 10,000 varied prompts, per mode.

    .venv/bin/python -m pointsman.loadtests.bench_selection [--prompts 10000]

The decision is everything the router does before its BLS call: validate the request,
analyse the prompt (lexical analyser), score every ready model against live load, pick
one. The baseline in the same run is request validation alone, so the ratio shows what
selection adds on top of decoding the request. Targets: auto decision p99 <= 2 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from pointsman.export.dataset import PROMPTS_FILE as PROMPTS
from pointsman.policy.analysis import LexicalAnalyzer
from pointsman.policy.catalog import load_catalog
from pointsman.policy.contract import parse_router
from pointsman.policy.selection.selector import Selector
from pointsman.policy.selection.status import StatusBoard


def varied_prompts(count: int, seed: int = 0) -> list[str]:
    """The labelled prompts, cut, joined and repeated to `count` varied lengths."""
    base = [json.loads(line)["text"] for line in PROMPTS.read_text().splitlines() if line.strip()]
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        text = rng.choice(base)
        roll = rng.random()
        if roll < 0.2:
            text = text[: rng.randint(8, max(9, len(text)))]
        elif roll < 0.35:
            text = f"{text}\n\n{rng.choice(base)}"
        elif roll < 0.45:
            text = " ".join([text] * rng.randint(2, 6))
        out.append(text)
    return out


def busy_board(catalog, rng: random.Random) -> StatusBoard:
    board = StatusBoard(catalog)
    for name in catalog.names:
        board.set_ready(name, True)
        board.finished(name, tokens=rng.randint(20, 60), duration_s=rng.uniform(0.1, 0.5), ttft_s=0.01)
    return board


def time_ms(fn, items) -> np.ndarray:
    out = np.empty(len(items))
    for i, item in enumerate(items):
        start = time.perf_counter()
        fn(item)
        out[i] = (time.perf_counter() - start) * 1000.0
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=10_000)
    args = parser.parse_args(argv)
    console = Console()
    catalog = load_catalog()
    rng = random.Random(1)
    board = busy_board(catalog, rng)
    selector = Selector(catalog, board, LexicalAnalyzer())
    prompts = varied_prompts(args.prompts)
    requests = {
        "validation only (baseline)": [{"text_input": p, "max_tokens": 32} for p in prompts],
        "manual": [{"text_input": p, "model": "gpt2"} for p in prompts],
        "auto": [{"text_input": p, "auto_select": True, "max_tokens": 32} for p in prompts],
        "auto + requirements": [{"text_input": p, "max_response_time": 2.0, "min_quality": 0.5,
                                 "prefer_speed": True} for p in prompts],
        "hybrid (preferred ready)": [{"text_input": p, "preferred_model": "codegen"} for p in prompts],
    }
    for fields in requests["auto"][:200]:  # warm caches and regexes
        selector.select(parse_router(fields))
    table = Table(title=f"Selection decision time over {len(prompts):,} prompts (ms, in process)")
    for column in ("mode", "p50", "p99", "max", "p99 / baseline p99"):
        table.add_column(column, justify="right" if column != "mode" else "left")
    baseline = None
    for mode, items in requests.items():
        if mode.startswith("validation"):
            samples = time_ms(parse_router, items)
        else:
            samples = time_ms(lambda f: selector.select(parse_router(f)), items)
        p50, p99 = np.percentile(samples, [50, 99])
        baseline = baseline or p99
        table.add_row(mode, f"{p50:.3f}", f"{p99:.3f}", f"{samples.max():.3f}", f"{p99 / baseline:.1f}x")
        if mode == "auto":
            auto_p99 = p99
    console.print(table)
    verdict = "meets" if auto_p99 <= 2.0 else "misses"
    console.print(f"auto decision p99 {auto_p99:.3f} ms {verdict} the 2 ms target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
