"""Specialization scores from measured perplexity, and the catalog rewrite that records them."""

from __future__ import annotations

import math

import pytest

from pointsman.export.demo_corpus import is_held_out, is_prose, split
from pointsman.export.specialization import rewrite_catalog, scores_from
from pointsman.policy.catalog import DEFAULT_CATALOG, TASKS, parse_catalog

CROSS_ENTROPY = {"gpt2": {"code": 4.0, "prose": 3.0}, "distilgpt2": {"code": 4.4, "prose": 3.3},
                 "codegen": {"code": 2.0, "prose": 4.5}}


def test_best_model_per_domain_scores_one_and_the_rest_their_perplexity_ratio():
    scores = scores_from(CROSS_ENTROPY)

    assert scores["codegen"]["coding"] == 1.0
    assert scores["gpt2"]["coding"] == pytest.approx(math.exp(-2.0), abs=0.005)
    assert all(scores["gpt2"][t] == 1.0 for t in ("creative", "qa", "reasoning"))
    assert scores["distilgpt2"]["qa"] == pytest.approx(math.exp(-0.3), abs=0.005)
    assert scores["codegen"]["creative"] == pytest.approx(math.exp(-1.5), abs=0.005)


def test_rewrite_changes_only_specialization_lines_and_keeps_the_catalog_valid():
    import tomllib

    text = DEFAULT_CATALOG.read_text()
    scores = scores_from(CROSS_ENTROPY)
    new = rewrite_catalog(text, scores)
    catalog = parse_catalog(tomllib.loads(new))

    for name, by_task in scores.items():
        assert catalog[name].specialization_score == {t: by_task[t] for t in TASKS}
    changed = [(a, b) for a, b in zip(text.splitlines(), new.splitlines(), strict=True) if a != b]
    assert changed and all(b.startswith("specialization_score = ") for _, b in changed)


def test_rewrite_ignores_models_it_has_no_scores_for():
    text = DEFAULT_CATALOG.read_text()

    assert rewrite_catalog(text, {}) == text


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
