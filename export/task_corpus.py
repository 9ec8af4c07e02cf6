"""Task text for the specialised demo models: prompt/answer pairs built from local sources only.

    pairs = task_pairs("reasoning", "test")      # [TaskPair(prompt, answer, source), ...]
    text = training_text("qa")                   # what the qa model is fine-tuned on

Three tasks, each from its own source:
- coding: functions of the Python standard library (prompt: signature and docstring,
  answer: the body), whole files split by a stable hash of the path;
- qa: questions about local documentation with the documentation's own answer: Debian
  package descriptions (/var/lib/dpkg/status), Python's reference topics (pydoc_data) and
  standard-library module and function docstrings, split by a hash of the subject;
- reasoning: generated arithmetic and logic word problems with worked answers, split by
  seed range (no problem text is shared across splits).

Splits: train (fine-tuning), score (the catalog's specialization scores) and test (the
regret benchmark); they share no source file, subject or problem.
"""

from __future__ import annotations

import ast
import hashlib
import random
import re
import sysconfig
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

TASK_SOURCES = {"coding": "stdlib functions", "qa": "local documentation", "reasoning": "generated word problems"}
SPLITS = ("train", "score", "test")
HELD_OUT_SHARE = 0.2  # of files or subjects, halved between score and test
DPKG_STATUS = Path("/var/lib/dpkg/status")
MAX_ANSWER_CHARS = 400


@dataclass(frozen=True)
class TaskPair:
    prompt: str
    answer: str
    source: str  # file, subject or generator seed: what the split is decided on


def split_of(key: str) -> str:
    """Return train for most keys; the held-out share goes half to score, half to test."""
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") / 2**32
    if bucket < HELD_OUT_SHARE / 2:
        return "score"
    return "test" if bucket < HELD_OUT_SHARE else "train"


def _clean(text: str) -> str:
    """One paragraph: whitespace runs collapsed, cut at a sentence end near MAX_ANSWER_CHARS."""
    text = " ".join(text.split())
    if len(text) <= MAX_ANSWER_CHARS:
        return text
    cut = text.rfind(". ", 0, MAX_ANSWER_CHARS)
    return text[:cut + 1] if cut > 80 else text[:MAX_ANSWER_CHARS]


# ---------------------------------------------------------------- coding
def _stdlib_files() -> list[Path]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(stdlib.glob("*.py")) + sorted(stdlib.glob("*/*.py"))
    return [p for p in files if "test" not in p.parent.name and not p.name.startswith("test_")]


def coding_pairs() -> Iterator[TaskPair]:
    """Top-level and method functions with a docstring: signature + docstring -> body, dedented."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in _stdlib_files():
        try:
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
        except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
            continue
        lines = source.splitlines()
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef) or not ast.get_docstring(node) or len(node.body) < 2:
                continue
            whole = textwrap.dedent("\n".join(lines[node.lineno - 1:node.end_lineno])).splitlines()
            cut = node.body[0].end_lineno - node.lineno + 1  # the line that closes the docstring
            head, body = "\n".join(whole[:cut]), "\n".join(whole[cut:]).rstrip()
            if 20 <= len(body) <= 600 and len(head) <= 600:
                yield TaskPair(head, body, f"stdlib/{path.relative_to(stdlib)}")


# ---------------------------------------------------------------- qa
def _dpkg_packages() -> Iterator[tuple[str, str, str]]:
    """(package, short description, long description) from the dpkg status file."""
    if not DPKG_STATUS.exists():
        return
    for block in DPKG_STATUS.read_text(encoding="utf-8", errors="replace").split("\n\n"):
        name = re.search(r"^Package: (\S+)", block, re.M)
        desc = re.search(r"^Description: (.*)\n((?: .*\n?)*)", block, re.M)
        if name and desc:
            long = " ".join(line.strip() for line in desc.group(2).splitlines() if line.strip() != ".")
            yield name.group(1), desc.group(1).strip(), long


QA_PACKAGE_QUESTIONS = ("What is {p}?", "What does the {p} package do?", "what is {p} used for",
                        "Can you tell me what {p} is?")
QA_MODULE_QUESTIONS = ("What does the Python {m} module do?", "What is the {m} module for?",
                       "what is {m} in python")
QA_FUNCTION_QUESTIONS = ("What does {f} do?", "What does the function {f} do in Python?")


def qa_pairs() -> Iterator[TaskPair]:
    """Questions about local documentation, answered by that documentation."""
    for index, (package, short, long) in enumerate(_dpkg_packages()):
        question = QA_PACKAGE_QUESTIONS[index % len(QA_PACKAGE_QUESTIONS)].format(p=package)
        answer = _clean(f"{package} is {short[:1].lower()}{short[1:]}. {long}")
        yield TaskPair(question, answer, f"dpkg/{package}")
    from pydoc_data.topics import topics

    for key in sorted(topics):
        title, _, rest = topics[key].strip().partition("\n")
        paragraphs = [p for p in re.split(r"\n\s*\n", rest) if p.strip() and not set(p.strip()) <= set("*=-")]
        prose = next((p for p in paragraphs if len(p.split()) > 8 and "::=" not in p), None)
        if prose:
            yield TaskPair(f"What is {title.strip().strip('*').lower()} in Python?", _clean(prose), f"pydoc/{key}")
    for path in _stdlib_files():
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
            continue
        module = path.stem if path.parent.name == "lib" or "python3" in path.parent.name else \
            f"{path.parent.name}.{path.stem}"
        doc = ast.get_docstring(tree)
        if doc and len(doc.split()) > 6 and not module.startswith("_"):
            first = doc.strip().split("\n\n")[0]
            question = QA_MODULE_QUESTIONS[len(module) % len(QA_MODULE_QUESTIONS)].format(m=module)
            yield TaskPair(question, _clean(first), f"module/{module}")
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_") and ast.get_docstring(node):
                first = ast.get_docstring(node).strip().split("\n\n")[0]
                if len(first.split()) > 5:
                    name = f"{module}.{node.name}()"
                    question = QA_FUNCTION_QUESTIONS[len(name) % len(QA_FUNCTION_QUESTIONS)].format(f=name)
                    yield TaskPair(question, _clean(first), f"module/{module}")


# ---------------------------------------------------------------- reasoning
NAMES = ("Ann", "Ben", "Carla", "Dev", "Ema", "Femi", "Gus", "Hana", "Ivo", "Jia", "Kofi", "Lea")
ITEMS = ("apples", "books", "pencils", "cards", "stamps", "marbles", "cookies", "coins")
SEEDS = {"train": range(0, 6000), "score": range(100_000, 100_400), "test": range(200_000, 200_400)}


def _problem(rng: random.Random) -> tuple[str, str]:
    kind = rng.randrange(10)
    a, b = rng.sample(NAMES, 2)
    if kind == 0:
        km, h = rng.randrange(2, 30) * 10, rng.randrange(2, 6)
        return (f"A train travels {km} km in {h} hours. What is its average speed?",
                f"Speed is distance divided by time: {km} km / {h} h = {km / h:g} km/h. The answer is {km / h:g} km/h.")
    if kind == 1:
        price, off = rng.randrange(20, 200), rng.choice((10, 15, 20, 25, 30, 40, 50))
        cut = price * off / 100
        return (f"A jacket costs ${price} and is {off}% off. What is the sale price?",
                f"The discount is {off}% of {price} = {cut:g}. The sale price is {price} - {cut:g} = {price - cut:g}. "
                f"The answer is ${price - cut:g}.")
    if kind == 2:
        x, y, z = rng.randrange(5, 40), rng.randrange(2, 20), rng.randrange(1, 10)
        item = rng.choice(ITEMS)
        return (f"{a} has {x} {item}. {b} gives {a} {y} more, then {a} gives away {z}. How many {item} does {a} have?",
                f"Start with {x}. After getting {y}: {x} + {y} = {x + y}. After giving away {z}: {x + y} - {z} = "
                f"{x + y - z}. The answer is {x + y - z}.")
    if kind == 3:
        age, k, years = rng.randrange(3, 15), rng.randrange(2, 5), rng.randrange(2, 12)
        return (f"{a} is {age} years old. {b} is {k} times as old as {a}. How old will {b} be in {years} years?",
                f"{b} is {k} x {age} = {k * age} now. In {years} years: {k * age} + {years} = {k * age + years}. "
                f"The answer is {k * age + years}.")
    if kind == 4:
        start, step = rng.randrange(1, 20), rng.randrange(2, 9)
        seq = [start + i * step for i in range(5)]
        return (f"What is the next number in the sequence {', '.join(map(str, seq))}?",
                f"Each number is {step} more than the one before. {seq[-1]} + {step} = {seq[-1] + step}. "
                f"The answer is {seq[-1] + step}.")
    if kind == 5:
        workers, days, more = rng.randrange(2, 9), rng.randrange(2, 13), rng.randrange(2, 5)
        total = workers * days
        return (f"{workers} workers build a wall in {days} days. How many days would {workers * more} workers need?",
                f"The wall takes {workers} x {days} = {total} worker-days. With {workers * more} workers: "
                f"{total} / {workers * more} = {total / (workers * more):g} days. "
                f"The answer is {total / (workers * more):g} days.")
    if kind == 6:
        n1, p1, n2, p2 = rng.randrange(2, 6), rng.randrange(3, 12), rng.randrange(6, 12), rng.randrange(10, 25)
        u1, u2 = p1 / n1, p2 / n2
        better = "the first" if u1 < u2 else "the second"
        return (f"Which is the better deal: {n1} for ${p1} or {n2} for ${p2}?",
                f"The first costs {p1} / {n1} = {u1:.2f} each; the second costs {p2} / {n2} = {u2:.2f} each. "
                f"The answer is {better}, it is cheaper per item.")
    if kind == 7:
        group, thing = rng.choice((("cats", "animals"), ("roses", "flowers"), ("squares", "rectangles"),
                                   ("oaks", "trees"), ("violins", "instruments")))
        return (f"All {group} are {thing}. {a} owns one of the {group}. Is it one of the {thing}?",
                f"Every one of the {group} is one of the {thing}, and {a}'s is one of the {group}. "
                f"So it is one of the {thing}. The answer is yes.")
    if kind == 8:
        h, m, add = rng.randrange(6, 20), rng.choice((0, 15, 30, 45)), rng.randrange(20, 200, 5)
        end = h * 60 + m + add
        return (f"A meeting starts at {h}:{m:02d} and lasts {add} minutes. When does it end?",
                f"{h}:{m:02d} plus {add} minutes is {end // 60 % 24}:{end % 60:02d}. "
                f"The answer is {end // 60 % 24}:{end % 60:02d}.")
    boxes, per, left = rng.randrange(3, 12), rng.randrange(4, 25), rng.randrange(1, 10)
    item = rng.choice(ITEMS)
    return (f"There are {boxes} boxes with {per} {item} each, and {left} {item} are lost. How many are left?",
            f"{boxes} x {per} = {boxes * per} {item}. {boxes * per} - {left} = {boxes * per - left}. "
            f"The answer is {boxes * per - left}.")


def reasoning_pairs(split: str) -> Iterator[TaskPair]:
    seen: set[str] = set()
    for seed in SEEDS[split]:
        prompt, answer = _problem(random.Random(seed))
        if prompt not in seen:
            seen.add(prompt)
            yield TaskPair(prompt, answer, f"seed/{seed}")


# ---------------------------------------------------------------- access
def task_pairs(task: str, split: str) -> list[TaskPair]:
    """The pairs of one task and split, in a stable order; train never shares a source with score/test."""
    if task not in TASK_SOURCES:
        raise ValueError(f"task must be one of {', '.join(TASK_SOURCES)}, got {task!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if task == "reasoning":
        pairs = list(reasoning_pairs(split))
        # a problem drawn again under a later split's seed belongs to the earlier split only
        earlier = {p.prompt for s in SPLITS[:SPLITS.index(split)] for p in reasoning_pairs(s)}
        return [p for p in pairs if p.prompt not in earlier]
    return [p for p in _document_pairs(task) if split_of(p.source) == split]


@cache
def _document_pairs(task: str) -> tuple[TaskPair, ...]:
    """Every pair of a document-derived task, once per process (parsing the stdlib takes seconds).

    A prompt met in several sources (a function copied between modules) is kept once: on
    train if any copy is there, so no held-out prompt was ever trained on.
    """
    pairs = list(coding_pairs() if task == "coding" else qa_pairs())
    in_train = {p.prompt for p in pairs if split_of(p.source) == "train"}
    seen: set[str] = set()
    out = []
    for pair in pairs:
        if pair.prompt in seen or (pair.prompt in in_train and split_of(pair.source) != "train"):
            continue
        seen.add(pair.prompt)
        out.append(pair)
    return tuple(out)


def training_text(task: str) -> list[str]:
    """Documents the task's model is fine-tuned on: prompt, newline, answer."""
    return [f"{p.prompt}\n{p.answer}" for p in task_pairs(task, "train")]
