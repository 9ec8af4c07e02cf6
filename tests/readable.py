"""What "readable" means for a demo model's answer, checked by the README examples' test.

    assert readability_problems("Return the sum of a and b.") == []

An answer is readable when all of these hold:
- visible: at least MIN_VISIBLE non-whitespace characters;
- word-like: at least MIN_WORDS words of two or more ASCII letters, and letters make up at
  least MIN_LETTER_SHARE of the non-whitespace characters;
- not looping, with whitespace runs counted as one space: no piece of 1 to 12 characters
  (starting with a non-space) four or more times back to back (`_header_header_header_header`,
  `gitgitgitgit`, `C+++++`, `the the the the`), and no piece of 13 to 60 characters three
  or more times (`learned to "git merge" learned to "git merge" learned to "git merge"`).
"""

from __future__ import annotations

import re

MIN_VISIBLE = 8
MIN_WORDS = 3
MIN_LETTER_SHARE = 0.4
_WORD = re.compile(r"[A-Za-z]{2,}")
_LOOPS = (re.compile(r"(\S.{0,11}?)\1{3,}"), re.compile(r"(\S.{12,59}?)\1{2,}"))


def readability_problems(text: str) -> list[str]:
    """Every rule the text breaks, in words (empty when it is readable)."""
    problems = []
    visible = re.sub(r"\s+", "", text)
    if len(visible) < MIN_VISIBLE:
        problems.append(f"only {len(visible)} visible characters (at least {MIN_VISIBLE})")
    words = _WORD.findall(text)
    if len(words) < MIN_WORDS:
        problems.append(f"{len(words)} words of two or more letters (at least {MIN_WORDS})")
    letters = sum(c.isascii() and c.isalpha() for c in visible)
    if visible and letters / len(visible) < MIN_LETTER_SHARE:
        problems.append(f"letters are {letters / len(visible):.0%} of the visible characters "
                        f"(at least {MIN_LETTER_SHARE:.0%})")
    flat = re.sub(r"\s+", " ", text)
    for pattern in _LOOPS:
        loop = pattern.search(flat)
        if loop:
            problems.append(f"{loop.group(1)!r} repeats {len(loop.group(0)) // len(loop.group(1))} times in a row")
            break
    return problems
