"""The lexical prompt analyser: table-driven cases, the analysis contract, its accuracy floor."""

from __future__ import annotations

import dataclasses

import pytest

from pointsman.export.dataset import load_prompts
from pointsman.policy.analysis import TASKS, LexicalAnalyzer, PromptAnalysis, PromptAnalyzer
from pointsman.policy.analysis.lexical import Rule

ANALYZER = LexicalAnalyzer()


@pytest.mark.parametrize("prompt, task", [
    ("def add(a, b):\n    return a + b", "coding"),
    ("SELECT name FROM users WHERE id = 3;", "coding"),
    ("my script crashes with KeyError: 'user_id'", "coding"),
    ("Traceback (most recent call last):\n  File \"app.py\", line 3", "coding"),
    ("const xs = items.map(x => x * 2);", "coding"),
    ("git rebase -i HEAD~3", "coding"),
    ("Write a haiku about recursion", "creative"),
    ("Compose a limerick about a cat who learned Python", "creative"),
    ("Tell me a bedtime story about a dragon", "creative"),
    ("What is the capital of France?", "qa"),
    ("Who wrote Pride and Prejudice?", "qa"),
    ("If 6 workers build a wall in 9 days, how long would 3 workers take? Reason step by step.", "reasoning"),
    ("What is the next number in the sequence 2, 6, 12, 20, 30?", "reasoning"),
    ("All bloops are razzies and all razzies are lazzies. Must all bloops be lazzies?", "reasoning"),
])
def test_clear_prompts_get_their_task_with_confidence(prompt, task):
    analysis = ANALYZER.analyze(prompt)

    assert analysis.task == task, analysis
    assert analysis.confidence >= 0.85, analysis
    assert analysis.analyzer == "lexical"
    # the fast path (narrowed to 0.9 on the fresh prompts) takes all but the nonsense-word syllogism
    assert ANALYZER.is_confident(analysis) == ("bloops" not in prompt), analysis


@pytest.mark.parametrize("prompt", ["hello", "thoughts?", "ok so about that thing from yesterday"])
def test_prompts_without_evidence_are_not_confident(prompt):
    assert not ANALYZER.is_confident(ANALYZER.analyze(prompt))


@pytest.mark.parametrize("prompt", ["", "x", "def f(): pass", "Write a poem " * 200, "∑ 🙂 ünïcode"])
def test_analysis_is_a_distribution_over_the_four_tasks(prompt):
    analysis = ANALYZER.analyze(prompt)

    assert tuple(analysis.probabilities) == TASKS
    assert sum(analysis.probabilities.values()) == pytest.approx(1.0)
    assert analysis.task == max(TASKS, key=analysis.probabilities.__getitem__)
    assert analysis.confidence == pytest.approx(analysis.probabilities[analysis.task])
    assert 0.0 <= analysis.complexity <= 1.0


@pytest.mark.parametrize("simple, hard", [
    ("What is 2 + 2?", "Compare three designs for a distributed cache step by step, first the data model, then "
                       "consistency, then failure handling; justify the trade-offs and edge cases in detail."),
    ("capital of Peru?", "Explain why the French Revolution happened, analyse the economic causes, compare them "
                         "with the political ones and evaluate which mattered most."),
])
def test_longer_multi_step_requests_are_more_complex(simple, hard):
    assert ANALYZER.analyze(hard).complexity > ANALYZER.analyze(simple).complexity + 0.2


def test_analysis_is_immutable():
    analysis = ANALYZER.analyze("def f(): pass")

    with pytest.raises(dataclasses.FrozenInstanceError):
        analysis.task = "qa"  # type: ignore[misc]
    with pytest.raises(TypeError):
        analysis.probabilities["qa"] = 1.0  # type: ignore[index]


def test_lexical_analyzer_satisfies_the_analyzer_protocol():
    assert isinstance(ANALYZER, PromptAnalyzer)


def test_rules_naming_an_unknown_task_are_refused():
    with pytest.raises(ValueError, match="unknown tasks"):
        LexicalAnalyzer(rules=(Rule("poetry", r"poem", 1.0),))


def test_escapes_keep_their_case_when_rules_are_lowered():
    analyzer = LexicalAnalyzer(rules=(Rule("coding", r"\S+\.PY\b", 5.0),))  # \S must not become \s

    assert analyzer.analyze("run main.py now").task == "coding"


@pytest.mark.parametrize("field, value", [("task", "poetry"), ("confidence", 1.5), ("complexity", -0.1)])
def test_prompt_analysis_refuses_values_out_of_contract(field, value):
    fields = dict(task="qa", confidence=0.5, probabilities=dict.fromkeys(TASKS, 0.25), complexity=0.2, analyzer="x")
    fields[field] = value

    with pytest.raises(ValueError, match=field if field != "task" else "task"):
        PromptAnalysis(**fields)


def test_from_probabilities_normalises_and_picks_the_most_probable_task():
    analysis = PromptAnalysis.from_probabilities({"coding": 2, "creative": 1, "qa": 1, "reasoning": 0}, 1.7, "t")

    assert analysis.task == "coding"
    assert analysis.confidence == pytest.approx(0.5)
    assert analysis.complexity == 1.0  # clipped


def test_lexical_accuracy_on_the_tune_prompts_stays_above_its_floor():
    tune = load_prompts("tune")
    right = sum(ANALYZER.analyze(p.text).task == p.label for p in tune)

    assert right / len(tune) >= 0.9


def test_confident_lexical_answers_are_almost_always_right():
    answers = [(ANALYZER.analyze(p.text), p.label) for p in load_prompts()]
    confident = [(a, label) for a, label in answers if ANALYZER.is_confident(a)]

    assert len(confident) >= 0.3 * len(answers)
    assert sum(a.task == label for a, label in confident) / len(confident) >= 0.98


@pytest.mark.parametrize("prompt", [
    "I'm working on a novel set on a 1700s whaling ship. How did sailors actually keep their food from rotting?",
    "writing a short story about a lighthouse keeper, what was a keeper's daily routine like in 1900?",
])
def test_a_story_writers_factual_question_is_not_taken_as_creative(prompt):
    analysis = ANALYZER.analyze(prompt)

    # the deliverable is facts: qa leads, and the fast path leaves the rest to the classifier
    assert analysis.task == "qa", analysis
    assert not ANALYZER.is_confident(analysis), analysis


def test_a_story_about_someone_who_was_something_stays_creative():
    analysis = ANALYZER.analyze("Write a story for my daughter about a knight who was afraid of the dark")

    assert analysis.task == "creative" and ANALYZER.is_confident(analysis), analysis


@pytest.mark.parametrize("prompt", [
    "write a short speech for my hockey team, we're down 2-1 after the second period",
    "write me a pep talk for the team, we lost 4-0 last week",
])
def test_a_match_score_in_a_writing_request_is_not_arithmetic(prompt):
    analysis = ANALYZER.analyze(prompt)

    assert analysis.task == "creative", analysis


def test_a_subtraction_written_without_spaces_is_still_arithmetic():
    analysis = ANALYZER.analyze("Compute 45-17, then multiply the result by 3. Show each step.")

    assert analysis.task == "reasoning" and ANALYZER.is_confident(analysis), analysis
