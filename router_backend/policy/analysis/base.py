"""The one interface every prompt analyser offers the router.

    analysis = LexicalAnalyzer().analyze("def add(a, b):")
    analysis.task, analysis.confidence, analysis.analyzer  # ('coding', 0.97, 'lexical')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from pointsman.policy.catalog import TASKS

__all__ = ["TASKS", "PromptAnalysis", "PromptAnalyzer"]


@dataclass(frozen=True)
class PromptAnalysis:
    """What a prompt asks for: the task, how sure the analyser is, and how hard it looks.

    probabilities has one entry per task in TASKS and sums to 1; confidence is the
    probability of the chosen task; complexity is 0 (trivial) to 1 (long, multi-step).
    """

    task: str
    confidence: float
    probabilities: Mapping[str, float] = field(hash=False)
    complexity: float
    analyzer: str

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if set(self.probabilities) != set(TASKS):
            raise ValueError(f"probabilities need exactly the tasks {', '.join(TASKS)}")
        for name in ("confidence", "complexity"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        # read-only, in TASKS order, so the value stays immutable and prints the same way
        object.__setattr__(self, "probabilities", MappingProxyType({t: float(self.probabilities[t]) for t in TASKS}))

    @classmethod
    def from_probabilities(cls, probabilities: Mapping[str, float], complexity: float, analyzer: str) -> PromptAnalysis:
        """Pick the most probable task, with its probability as the confidence."""
        total = sum(max(0.0, float(probabilities[t])) for t in TASKS) or 1.0
        probs = {t: max(0.0, float(probabilities[t])) / total for t in TASKS}
        task = max(TASKS, key=probs.__getitem__)  # ties go to the first task in TASKS
        return cls(task=task, confidence=probs[task], probabilities=probs,
                   complexity=min(1.0, max(0.0, float(complexity))), analyzer=analyzer)


@runtime_checkable
class PromptAnalyzer(Protocol):
    """Anything that turns a prompt into a PromptAnalysis."""

    name: str

    def analyze(self, prompt: str) -> PromptAnalysis: ...
