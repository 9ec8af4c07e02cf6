"""Routing quality: how often auto-selection picks the model that is best at the prompt.

    .venv/bin/python -m pointsman.loadtests.bench_routing
    .venv/bin/python -m pointsman.loadtests.bench_routing --windows 64

Over the validation prompts, each prompt gets a held-out continuation from the domain of
its true task (coding: Python source; creative, qa, reasoning: English prose; files
never trained on, export/demo_corpus.py). Every served demo model scores that
continuation after the prompt (its exported ONNX graph, the one Triton serves); the best
model is the one with the lowest perplexity. Routing regret is the chosen model's
cross-entropy minus the best one's, in nats per token (0 when it picks the best;
exp(regret) is the perplexity ratio). Strategies: the router's auto policy in process
(pointsman.policy.selection.Selector on an idle board) fed by the auto analysis (lexical
when confident, else the classifier), the same fed by the lexical analyser alone and by
the true task (an oracle analyser), always-gpt2, and uniform random routing (its
expectation).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pointsman.export.dataset import LabelledPrompt, load_prompts
from pointsman.export.demo_corpus import held_out_chunks
from pointsman.export.repository import engine_name
from pointsman.export.specialization import DOMAIN_OF_TASK, SequenceScorer
from pointsman.loadtests.bench_classifier import auto_decision
from pointsman.policy.analysis import TASKS, LexicalAnalyzer, PromptAnalysis
from pointsman.policy.analysis.classifier import OnnxPromptClassifier
from pointsman.policy.catalog import load_catalog
from pointsman.policy.contract import parse_router

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = ROOT / "model_repository"
PROMPT_TOKENS = 64
CONTINUATION_TOKENS = 64


class OracleAnalyzer:
    """Knows the true task: the upper bound of what better analysis could buy."""

    name = "oracle"

    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels

    def analyze(self, prompt: str) -> PromptAnalysis:
        task = self.labels[prompt]
        return PromptAnalysis.from_probabilities({t: float(t == task) for t in TASKS}, 0.3, self.name)


class FunctionAnalyzer:
    def __init__(self, fn: Callable[[str], PromptAnalysis]) -> None:
        self.analyze = fn


def router_choice(analyzer) -> Callable[[str], tuple[str, str]]:
    """(model, detected task) from the lead's selection policy, all models ready and idle."""
    from pointsman.policy.selection.selector import Selector
    from pointsman.policy.selection.status import StatusBoard

    catalog = load_catalog()
    board = StatusBoard(catalog)
    for name in catalog.names:
        board.set_ready(name, True)
    selector = Selector(catalog, board, analyzer)

    def choose(prompt: str) -> tuple[str, str]:
        decision = selector.select(parse_router({"text_input": prompt, "auto_select": True}))
        return decision.model, decision.task

    return choose


@dataclass(frozen=True)
class Outcome:
    name: str
    task_accuracy: float | None
    best_pick: float  # share of prompts routed to the lowest-perplexity model
    regret: float  # mean nats per token over the best model
    by_task: dict[str, float]  # mean regret per true task


def cross_entropies(prompts: list[LabelledPrompt], models: list[str], windows: int) -> np.ndarray:
    """[prompt, model] nats per token of each prompt's held-out continuation, after the prompt."""
    scorers = {m: SequenceScorer(REPOSITORY / engine_name(m) / "1") for m in models}
    encode = scorers[models[0]].encode
    pools = {d: held_out_chunks(d, encode, windows, CONTINUATION_TOKENS) for d in set(DOMAIN_OF_TASK.values())}
    out = np.zeros((len(prompts), len(models)))
    for i, prompt in enumerate(prompts):
        pool = pools[DOMAIN_OF_TASK[prompt.label]]
        pick = int.from_bytes(hashlib.sha256(prompt.text.encode()).digest()[:4], "big") % len(pool)
        context = encode(prompt.text + "\n")[-PROMPT_TOKENS:]
        for j, model in enumerate(models):
            nll, count = scorers[model].nll(context + pool[pick], score_from=len(context))
            out[i, j] = nll / count
    return out


def evaluate(name: str, picks: list[str], tasks: list[str] | None, prompts: list[LabelledPrompt],
             ce: np.ndarray, models: list[str]) -> Outcome:
    chosen = np.array([ce[i, models.index(m)] for i, m in enumerate(picks)])
    regret = chosen - ce.min(1)
    by_task = {t: float(regret[[p.label == t for p in prompts]].mean()) for t in TASKS}
    accuracy = None if tasks is None else float(np.mean([t == p.label for t, p in zip(tasks, prompts, strict=True)]))
    return Outcome(name, accuracy, float(np.mean(regret < 1e-12)), float(regret.mean()), by_task)


def render(outcomes: list[Outcome], ce: np.ndarray, models: list[str], prompts: list[LabelledPrompt]) -> str:
    head = (f"{'strategy':<34}{'task acc':>9}{'best pick':>10}{'regret':>9}{'ppl ratio':>10}   "
            + " ".join(f"{t:>9}" for t in TASKS))
    lines = [f"{len(prompts)} validation prompts; regret in nats/token over the lowest-perplexity model "
             f"(per-task columns: mean regret)", head]
    for o in outcomes:
        acc = "-" if o.task_accuracy is None else f"{o.task_accuracy:.1%}"
        lines.append(f"{o.name:<34}{acc:>9}{o.best_pick:>10.1%}{o.regret:>9.3f}{math.exp(o.regret):>10.2f}   "
                     + " ".join(f"{o.by_task[t]:>9.3f}" for t in TASKS))
    lines.append("")
    lines.append("mean perplexity of the continuations, by true task: " + "; ".join(
        f"{t}: " + ", ".join(f"{m} {math.exp(ce[[p.label == t for p in prompts], j].mean()):.1f}"
                             for j, m in enumerate(models)) for t in TASKS))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pointsman.loadtests.bench_routing",
        description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=48, help="held-out continuations per domain")
    args = parser.parse_args(argv)
    models = load_catalog().names
    prompts = load_prompts("validation")
    texts = [p.text for p in prompts]
    ce = cross_entropies(prompts, models, args.windows)

    lexical = LexicalAnalyzer()
    classifier = OnnxPromptClassifier.from_folder(REPOSITORY / "prompt_classifier" / "1")
    analyzers = {
        "router: auto analysis (lex+clf)": FunctionAnalyzer(auto_decision(lexical, classifier.analyze)),
        "router: lexical analysis only": lexical,
        "router: true task (oracle)": OracleAnalyzer({p.text: p.label for p in prompts}),
    }
    outcomes = []
    for name, analyzer in analyzers.items():
        choose = router_choice(analyzer)
        picks, tasks = zip(*(choose(t) for t in texts), strict=True)
        outcomes.append(evaluate(name, list(picks), list(tasks), prompts, ce, models))
    for model in models:
        outcomes.append(evaluate(f"always {model}", [model] * len(texts), None, prompts, ce, models))
    # uniform random routing, as its expectation over the models (no sampling noise)
    expected = ce.mean(1) - ce.min(1)
    outcomes.append(Outcome("random (expected)", None, float((ce == ce.min(1, keepdims=True)).mean()),
                            float(expected.mean()),
                            {t: float(expected[[p.label == t for p in prompts]].mean()) for t in TASKS}))
    print(render(outcomes, ce, models, prompts))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
