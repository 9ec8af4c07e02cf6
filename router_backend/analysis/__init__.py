"""Prompt analysis: what a prompt asks for (task) and how hard it is (complexity).

    from router_backend.analysis import LexicalAnalyzer
    LexicalAnalyzer().analyze("Write a haiku about rain").task  # 'creative'
"""

from router_backend.analysis.base import TASKS, PromptAnalysis, PromptAnalyzer
from router_backend.analysis.classifier import ClassifierAnalyzer, TwoStageAnalyzer, analysis_from_outputs, combine
from router_backend.analysis.lexical import LexicalAnalyzer

__all__ = ["TASKS", "ClassifierAnalyzer", "LexicalAnalyzer", "PromptAnalysis", "PromptAnalyzer", "TwoStageAnalyzer", "analysis_from_outputs",
           "combine"]
