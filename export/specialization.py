"""Measure each served model's likelihood of reference answers per task; derive the catalog's scores.

    python -m pointsman.export.specialization            # print the table
    python -m pointsman.export.specialization --write    # also record them; `pointsman demo-models` writes them
                                                         # into the demo models' configs (pointsman.task_score.*)

Runs the exported graphs (model_repository/NAME/1/model.onnx, what Triton serves) with
onnxruntime. For coding, qa and reasoning: the "score" split of export/task_corpus.py
(prompt/answer pairs whose sources were never trained on and are disjoint from the
"test" split the regret benchmark uses); each model's cross-entropy of the reference
answer after its prompt. For creative (no reference answers exist locally): windows of
held-out English prose (export/demo_corpus.py). The demo models share one tokenizer, so
their cross-entropies compare directly. A task's score is exp(best - this model's
cross-entropy), in nats per token: the best model scores 1.0.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pointsman.export.repository import engine_name
from pointsman.policy.catalog import TASKS

RECORD = Path(__file__).with_name("demo_weights") / "perplexity.json"
WINDOWS = 32
WINDOW_TOKENS = 128
PAIRS_PER_TASK = 120
PROMPT_TOKENS = 192
ANSWER_TOKENS = 128


class SequenceScorer:
    """Negative log-likelihood of token ids under one exported decoder graph (no past)."""

    def __init__(self, folder: Path, threads: int = 1) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    def nll(self, ids: Sequence[int], score_from: int = 1) -> tuple[float, int]:
        """(sum of -log p(token | earlier tokens) for positions >= score_from, tokens scored)."""
        from pointsman.export.onnx_export import prompt_feeds

        n = len(ids)
        feeds = prompt_feeds(self.session, np.asarray([ids], np.int64))
        logits = self.session.run(["logits"], feeds)[0][0].astype(np.float64)  # [n, vocab]
        top = logits.max(-1, keepdims=True)
        log_probs = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
        start = max(1, score_from)
        targets = np.asarray(ids[start:])
        picked = log_probs[np.arange(start - 1, n - 1), targets]
        return float(-picked.sum()), len(targets)


def reference_nll(scorer: SequenceScorer, prompt: str, answer: str) -> float:
    """Nats per token of `answer` after `prompt` and a newline (the fine-tuning format)."""
    context = scorer.encode(prompt + "\n")[-PROMPT_TOKENS:]
    target = scorer.encode(answer)[:ANSWER_TOKENS]
    nll, count = scorer.nll(context + target, score_from=len(context))
    return nll / count


def evenly(items: list, count: int) -> list:
    """`count` items spread over the list (all of them if fewer), in a stable order."""
    if len(items) <= count:
        return items
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


def measure(repository: Path, models: Sequence[str], windows: int = WINDOWS) -> dict[str, dict[str, float]]:
    """Cross-entropy in nats per token, per model and task: score-split answers, held-out prose for creative."""
    from pointsman.export.demo_corpus import held_out_chunks
    from pointsman.export.task_corpus import TASK_SOURCES, task_pairs

    scorers = {name: SequenceScorer(repository / engine_name(name) / "1") for name in models}
    pairs = {task: evenly(task_pairs(task, "score"), PAIRS_PER_TASK) for task in TASK_SOURCES}
    prose = held_out_chunks("prose", scorers[models[0]].encode, windows, WINDOW_TOKENS)
    result: dict[str, dict[str, float]] = {}
    for name, scorer in scorers.items():
        result[name] = {task: float(np.mean([reference_nll(scorer, p.prompt, p.answer) for p in items]))
                        for task, items in pairs.items()}
        total, count = 0.0, 0
        for ids in prose:
            nll, n = scorer.nll(ids)
            total, count = total + nll, count + n
        result[name]["creative"] = total / count
    return result


def scores_from(cross_entropy: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    best = {t: min(ce[t] for ce in cross_entropy.values()) for t in TASKS}
    return {name: {t: round(math.exp(best[t] - ce[t]), 2) for t in TASKS} for name, ce in cross_entropy.items()}


def table(cross_entropy: dict[str, dict[str, float]], scores: dict[str, dict[str, float]]) -> str:
    lines = [f"{'model':<12}" + "".join(f"{t + ' ppl':>16}" for t in TASKS) + "   specialization_score"]
    for name, ce in cross_entropy.items():
        lines.append(f"{name:<12}" + "".join(f"{math.exp(ce[t]):>16.2f}" for t in TASKS) + "   "
                     + ", ".join(f"{t} {scores[name][t]:.2f}" for t in TASKS))
    lines.append(f"perplexity of reference answers after their prompts (score split, {PAIRS_PER_TASK} per task; "
                 f"creative: {WINDOWS} held-out prose windows of {WINDOW_TOKENS} tokens)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pointsman.export.specialization",
        description=__doc__.splitlines()[0])
    parser.add_argument("--model-repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--write", action="store_true", help="record the scores (export/demo_weights/perplexity.json)")
    args = parser.parse_args(argv)
    from pointsman.export.demo_models import DEMO_SHAPES

    models = list(DEMO_SHAPES)
    cross_entropy = measure(args.model_repository, models)
    scores = scores_from(cross_entropy)
    print(table(cross_entropy, scores))  # noqa: T201
    if args.write:
        cross_entropy = {m: {t: round(v, 3) for t, v in ce.items()} for m, ce in cross_entropy.items()}
        RECORD.write_text(json.dumps({"cross_entropy_nats": cross_entropy, "scores": scores,
                                      "pairs_per_task": PAIRS_PER_TASK, "split": "score",
                                      "creative_windows": WINDOWS, "window_tokens": WINDOW_TOKENS}, indent=2) + "\n")
        print(f"wrote {RECORD}; run `pointsman demo-models` to write the scores into the configs")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
