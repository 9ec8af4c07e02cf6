"""Specialization scores from measured likelihoods, the catalog rewrite, and the task text behind them."""

from __future__ import annotations

import math

import pytest

from pointsman.export.demo_corpus import is_held_out, is_prose, split
from pointsman.export.specialization import evenly, scores_from
from pointsman.export.task_corpus import TASK_SOURCES, task_pairs

CROSS_ENTROPY = {"gpt2": {"coding": 4.0, "creative": 3.0, "qa": 2.0, "reasoning": 3.0},
                 "distilgpt2": {"coding": 4.4, "creative": 3.3, "qa": 2.6, "reasoning": 1.0},
                 "codegen": {"coding": 2.0, "creative": 4.5, "qa": 3.0, "reasoning": 3.5}}


def test_best_model_per_task_scores_one_and_the_rest_their_likelihood_ratio():
    scores = scores_from(CROSS_ENTROPY)

    assert (scores["codegen"]["coding"], scores["gpt2"]["qa"], scores["distilgpt2"]["reasoning"]) == (1.0, 1.0, 1.0)
    assert scores["gpt2"]["coding"] == pytest.approx(math.exp(-2.0), abs=0.005)
    assert scores["distilgpt2"]["qa"] == pytest.approx(math.exp(-0.6), abs=0.005)
    assert scores["codegen"]["creative"] == pytest.approx(math.exp(-1.5), abs=0.005)


@pytest.mark.parametrize("task", list(TASK_SOURCES))
def test_task_splits_share_no_source_and_no_prompt(task):
    splits = {split: task_pairs(task, split) for split in ("train", "score", "test")}

    assert all(len(pairs) >= 150 for pairs in splits.values()), {k: len(v) for k, v in splits.items()}
    for a, b in (("train", "score"), ("train", "test"), ("score", "test")):
        assert not {p.source for p in splits[a]} & {p.source for p in splits[b]}
        assert not {p.prompt for p in splits[a]} & {p.prompt for p in splits[b]}


def test_reference_answers_respond_to_their_prompts():
    import ast

    for pair in task_pairs("coding", "test")[:50]:  # the body completes the function the prompt opens
        tree = ast.parse(pair.prompt + "\n" + pair.answer)
        assert isinstance(tree.body[0], ast.FunctionDef)
    for pair in task_pairs("reasoning", "test")[:50]:
        assert pair.answer.rstrip(".").split("The answer is ")[-1]
        numbers = [w for w in pair.prompt.replace("$", " ").replace(",", " ").split() if w.rstrip(".?").isdigit()]
        assert any(n.rstrip(".?") in pair.answer for n in numbers)  # the working uses the problem's figures
    for pair in task_pairs("qa", "test")[:50]:
        subject = pair.source.split("/", 1)[1].split(".")[-1]
        assert subject.lower() in (pair.prompt + pair.answer).lower()


def test_evenly_spreads_a_sample_over_the_list():
    assert evenly(list(range(10)), 5) == [0, 2, 4, 6, 8] and evenly([1, 2], 5) == [1, 2]


@pytest.mark.parametrize("text, prose", [
    ("The quick brown fox jumps over the lazy dog and keeps running across the wide green field. " * 10, True),
    ("def f(x):\n    return {k: v for k, v in x.items() if v}\n" * 20, False),
    ("| a | b |\n|---|---|\n| 1 | 2 |\n" * 40, False),
    ("Short.", False),
])
def test_prose_filter_keeps_sentences_and_drops_code_and_tables(text, prose):
    assert is_prose(text) is prose


def test_held_out_files_never_reach_training():
    docs = [(f"doc{i}", f"text {i}") for i in range(200)]
    train, held_out = split(docs)

    assert held_out and not set(train) & set(held_out)
    assert len(held_out) == sum(is_held_out(name) for name, _ in docs)
