"""The readability rule of the README examples' test passes real answers and catches the old failures."""

from __future__ import annotations

import pytest

from tests.readable import readability_problems


@pytest.mark.parametrize("text", [
    '\n    """Return a list of the currently in the given by the number.',
    ".get_header() do in Python?\nReturn the function as a file and return a string",
    "\nThe discount is 20% of 15 = 34. The answer is",
    "    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)",
])
def test_word_like_answers_are_readable(text: str) -> None:
    assert readability_problems(text) == []


@pytest.mark.parametrize(("text", "rule"), [
    ("\n\n\n\n\n\n\n\n", "visible"),
    ("   ", "visible"),
    ("12 + 34 = 46; 7 * 8 = 56", "words"),
    ("ab: 1234567890 1234567890 1234567890", "letters"),
    (".get_header_header_header_header_header_header", "repeats"),
    ('\n* "gitgitgitgitgitgitgitgit "gitgitgitgit', "repeats"),
    (" The C++++++++++++++++++", "repeats"),
    ("and the the the the end of it all", "repeats"),
    ('learned to "git merge"\nlearned to "git merge"\nlearned to "git merge"\nlearned to "git merge"', "repeats"),
])
def test_empty_symbolic_and_looping_answers_are_not(text: str, rule: str) -> None:
    problems = readability_problems(text)
    assert any(rule in p for p in problems), problems
