"""The labelled prompt set: size, balance, variety, a disjoint fixed split, reproducibility."""

from __future__ import annotations

from collections import Counter

import pytest

from pointsman.export import prompt_set
from pointsman.export.dataset import load_prompts, split_of
from pointsman.policy.analysis import TASKS

PROMPTS = load_prompts()


def test_the_set_has_at_least_600_prompts_and_every_task_120():
    counts = Counter(p.label for p in PROMPTS)

    assert len(PROMPTS) >= 600
    assert set(counts) == set(TASKS)
    assert min(counts.values()) >= 120
    assert max(counts.values()) <= 1.5 * min(counts.values())


def test_prompts_are_unique_and_varied_in_length():
    texts = [p.text.strip().lower() for p in PROMPTS]
    words = sorted(len(p.text.split()) for p in PROMPTS)

    assert len(set(texts)) == len(texts)
    assert words[0] <= 4 and words[-1] >= 35


@pytest.mark.parametrize("label, fragment", [
    ("coding", "crashes with"),  # indirect: a symptom, not a request
    ("coding", "SELECT"),  # code with no words around it
    ("creative", "haiku about recursion"),  # creative about a technical topic
    ("qa", "capital of"),  # short factual question
    ("reasoning", "step by step"),  # multi-step problems
])
def test_the_set_holds_the_hard_kinds_of_prompt(label, fragment):
    assert any(fragment.lower() in p.text.lower() and p.label == label for p in PROMPTS)


def test_code_fragments_without_words_are_labelled_coding():
    bare = [p for p in PROMPTS if p.group.startswith("code-snippet") and "\n" in p.text]

    assert len(bare) >= 10 and all(p.label == "coding" for p in bare)


def test_train_and_validation_share_no_template_group_and_no_prompt():
    train, validation = load_prompts("train"), load_prompts("validation")

    assert len(train) + len(validation) == len(PROMPTS)
    assert not {p.group for p in train} & {p.group for p in validation}
    assert not {p.text for p in train} & {p.text for p in validation}


def test_validation_is_about_a_quarter_and_holds_every_task():
    validation = load_prompts("validation")
    counts = Counter(p.label for p in validation)

    assert 0.15 <= len(validation) / len(PROMPTS) <= 0.35
    assert min(counts[t] for t in TASKS) >= 25


def test_split_is_a_stable_function_of_the_group():
    assert split_of("qa-hand-000") == split_of("qa-hand-000")
    assert {split_of(f"g{i}") for i in range(50)} == {"train", "validation"}


def test_complexity_annotations_are_in_range_and_reasoning_is_hardest_on_average():
    mean = {t: sum(p.complexity for p in PROMPTS if p.label == t) / sum(p.label == t for p in PROMPTS) for t in TASKS}

    assert all(0.0 <= p.complexity <= 1.0 for p in PROMPTS)
    assert max(mean, key=mean.get) == "reasoning" and min(mean, key=mean.get) == "qa"


def test_committed_file_is_what_the_generator_makes():
    assert prompt_set.main(["--check"]) == 0, "run: python -m pointsman.export.prompt_set"


def test_unknown_split_is_refused():
    with pytest.raises(ValueError, match="split"):
        load_prompts("test")
