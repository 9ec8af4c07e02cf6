"""Prompt analysis: what a prompt asks for (task) and how hard it is (complexity).

    from pointsman.policy.analysis import LexicalAnalyzer
    LexicalAnalyzer().analyze("Write a haiku about rain").task  # 'creative'
"""

from pointsman.policy.analysis.base import TASKS, PromptAnalysis, PromptAnalyzer
from pointsman.policy.analysis.classifier import ClassifierAnalyzer, TwoStageAnalyzer, analysis_from_outputs, combine
from pointsman.policy.analysis.lexical import LexicalAnalyzer

__all__ = ["TASKS", "ClassifierAnalyzer", "LexicalAnalyzer", "PromptAnalysis", "PromptAnalyzer", "TwoStageAnalyzer",
           "analysis_from_outputs", "combine"]
