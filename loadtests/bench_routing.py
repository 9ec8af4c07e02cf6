"""Routing quality: regret and best-pick rate of auto-selection against reference answers.

    .venv/bin/python -m pointsman.loadtests.bench_routing
    .venv/bin/python -m pointsman.loadtests.bench_routing --per-task 40     # quicker

Test prompts are the "test" split of export/task_corpus.py: coding (a standard-library
function's signature and docstring; reference: its body), qa (a question about local
documentation; reference: the documentation's answer) and reasoning (a generated word
problem; reference: its worked answer). No test source was trained on, and the catalog's
specialization scores come from the disjoint "score" split (export/specialization.py).
A model's quality on a prompt is its likelihood of the reference answer after the prompt
(nats per token, through the exported ONNX graph Triton serves); the best model is the
one with the lowest cross-entropy. Regret is the chosen model's cross-entropy minus the
best one's (0 when it picks the best). Strategies: the router's selection policy
(Selector on an idle board, as served) fed by the two-stage analysis (lexical fast path,
else lexical x classifier), by the lexical analyser alone and by the true task; always-X
for each model; uniform random (its expectation); and the per-prompt oracle.
Creative prompts are left out: nothing local gives them reference answers.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pointsman.export.demo_models import demo_catalog
from pointsman.export.repository import engine_name
from pointsman.export.specialization import SequenceScorer, evenly, reference_nll
from pointsman.export.task_corpus import TASK_SOURCES, TaskPair, task_pairs
from pointsman.loadtests.bench_classifier import auto_decision
from pointsman.policy.analysis import TASKS, LexicalAnalyzer, PromptAnalysis
from pointsman.policy.analysis.classifier import OnnxPromptClassifier
from pointsman.policy.contract import parse_router

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = ROOT / "model_repository"
BENCH_TASKS = tuple(TASK_SOURCES)


@dataclass(frozen=True)
class TestPrompt:
    task: str
    pair: TaskPair


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
    """(model, detected task) from the router's selection policy, all models ready and idle."""
    from pointsman.policy.selection.selector import Selector
    from pointsman.policy.selection.status import StatusBoard

    catalog = demo_catalog()
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
    best_pick: float  # share of prompts routed to the model most likely to produce the reference
    regret: float  # mean nats per token over the best model
    by_task: dict[str, float]  # mean regret per true task


def cross_entropies(prompts: list[TestPrompt], models: list[str]) -> np.ndarray:
    """[prompt, model] nats per token of each prompt's reference answer, after the prompt."""
    scorers = {m: SequenceScorer(REPOSITORY / engine_name(m) / "1") for m in models}
    return np.array([[reference_nll(scorers[m], p.pair.prompt, p.pair.answer) for m in models] for p in prompts])


def evaluate(name: str, picks: list[str], tasks: list[str] | None, prompts: list[TestPrompt],
             ce: np.ndarray, models: list[str]) -> Outcome:
    chosen = np.array([ce[i, models.index(m)] for i, m in enumerate(picks)])
    regret = chosen - ce.min(1)
    by_task = {t: float(regret[[p.task == t for p in prompts]].mean()) for t in BENCH_TASKS}
    accuracy = None if tasks is None else float(np.mean([t == p.task for t, p in zip(tasks, prompts, strict=True)]))
    return Outcome(name, accuracy, float(np.mean(regret < 1e-12)), float(regret.mean()), by_task)


def render(outcomes: list[Outcome], ce: np.ndarray, models: list[str], prompts: list[TestPrompt]) -> str:
    head = (f"{'strategy':<34}{'task acc':>9}{'best pick':>10}{'regret':>9}{'ppl ratio':>10}   "
            + " ".join(f"{t:>9}" for t in BENCH_TASKS))
    counts = ", ".join(f"{t} {sum(p.task == t for p in prompts)}" for t in BENCH_TASKS)
    lines = [f"{len(prompts)} test prompts with reference answers ({counts}); regret in nats/token of the reference "
             f"answer over the best model (per-task columns: mean regret)", head]
    for o in outcomes:
        acc = "-" if o.task_accuracy is None else f"{o.task_accuracy:.1%}"
        lines.append(f"{o.name:<34}{acc:>9}{o.best_pick:>10.1%}{o.regret:>9.3f}{math.exp(o.regret):>10.2f}   "
                     + " ".join(f"{o.by_task[t]:>9.3f}" for t in BENCH_TASKS))
    lines += ["", "reference-answer perplexity by task (mean over prompts) and how often each model is the best:"]
    best = ce.argmin(1)
    for t in BENCH_TASKS:
        rows = np.array([p.task == t for p in prompts])
        lines.append(f"  {t:<10}" + "   ".join(
            f"{m} {math.exp(ce[rows, j].mean()):6.2f} (best {np.mean(best[rows] == j):5.1%})"
            for j, m in enumerate(models)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pointsman.loadtests.bench_routing",
        description=__doc__.splitlines()[0])
    parser.add_argument("--per-task", type=int, default=80, help="test prompts per task")
    args = parser.parse_args(argv)
    models = demo_catalog().names
    prompts = [TestPrompt(t, p) for t in BENCH_TASKS for p in evenly(task_pairs(t, "test"), args.per_task)]
    texts = [p.pair.prompt for p in prompts]
    ce = cross_entropies(prompts, models)

    lexical = LexicalAnalyzer()
    classifier = OnnxPromptClassifier.from_folder(REPOSITORY / "prompt_classifier" / "1")
    analyzers = {
        "router: two-stage analysis": FunctionAnalyzer(auto_decision(lexical, classifier.analyze)),
        "router: lexical analysis only": lexical,
        "router: true task": OracleAnalyzer({p.pair.prompt: p.task for p in prompts}),
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
                            {t: float(expected[[p.task == t for p in prompts]].mean()) for t in BENCH_TASKS}))
    outcomes.append(evaluate("oracle (best model per prompt)", [models[j] for j in ce.argmin(1)], None, prompts,
                             ce, models))
    print(render(outcomes, ce, models, prompts))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
