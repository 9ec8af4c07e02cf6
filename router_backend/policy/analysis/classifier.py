"""The served prompt classifier's runtime, and how its outputs become a PromptAnalysis.

    classifier = OnnxPromptClassifier.from_folder(Path("model_repository/prompt_classifier/1"))
    probabilities, complexity = classifier.predict(["def add(a, b):", "Write a poem"])
    analysis = analysis_from_outputs(probabilities[0], complexity[0])

The graph (export/classifier.py) is all-MiniLM-L6-v2 with mean pooling and L2
normalisation, followed by the trained head, which also reads hashed character n-grams
(char_ngrams.py, computed here in numpy): input_ids, attention_mask and char_ngrams in,
probabilities [batch, 4] (TASKS order) and complexity [batch, 1] out. Serving needs only
onnxruntime, tokenizers and numpy. `combine` is the policy that merges the lexical and
the classifier analyses; the router calls the classifier only when the lexical analyser
is not confident.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from pointsman.policy.analysis.base import TASKS, PromptAnalysis
from pointsman.policy.analysis.char_ngrams import char_ngram_features

LOGGER = logging.getLogger(__name__)
NAME = "classifier"
ONNX_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
# the encoder reads a prompt's first 32 tokens when serving (all-MiniLM-L6-v2 takes up to
# 128); the character n-grams read up to 2,000 characters. The head is fitted on embeddings
# of the first TRAIN_MAX_TOKENS: refitted on 32 it lost 1 prompt on v1 and 2 on v2, while
# serving 32 on the 64-token head lost 1 on v2 (220/233) and none on tune or v1. Against 64,
# 32 took the classifier's in-process p99 to 0.33-0.52x and p90 to 0.57-0.74x on the prompts
# the router sends it (bench_classifier --serving, three runs on a loaded machine). 64 had
# cost one prompt in 233 against 128.
MAX_TOKENS = 32
TRAIN_MAX_TOKENS = 64
INPUT_NAMES = ("input_ids", "attention_mask", "char_ngrams")
OUTPUT_NAMES = ("probabilities", "complexity")
# combine() multiplies the classifier's probabilities by the lexical ones raised to this
# power (a product of experts). With the character n-grams the classifier needs the rules'
# vote less: chosen by leave-one-writer-out on the 1,329 hand-written training prompts
# (bench_classifier --features: 0.25 best of 0, 0.25, 0.5 and 1.0, by 0.15 points over
# 1.0), and tied best on tune + fresh v1 + v2 (bench_classifier --tune). Was 1.0.
LEXICAL_WEIGHT = 0.25


def analysis_from_outputs(probabilities: Sequence[float] | np.ndarray, complexity: float | Sequence[float] | np.ndarray,
                          analyzer: str = NAME) -> PromptAnalysis:
    """One prompt's classifier outputs (probabilities in TASKS order, complexity) as an analysis.

    Accepts what a BLS call returns: probabilities of shape [4] or [1, 4], complexity as
    a float or an array of one value.
    """
    probs = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if probs.shape != (len(TASKS),) or not np.all(np.isfinite(probs)):
        raise ValueError(f"classifier probabilities must be {len(TASKS)} finite numbers, got {probs!r}")
    value = float(np.asarray(complexity, dtype=np.float64).reshape(-1)[0])
    return PromptAnalysis.from_probabilities(dict(zip(TASKS, probs.tolist(), strict=True)), value, analyzer)


def combine(lexical: PromptAnalysis, classifier: PromptAnalysis | None) -> PromptAnalysis:
    """Return the analysis the router acts on, given the lexical one and (maybe) the classifier's.

    No classifier answer (not loaded, failed): the lexical analysis. Otherwise both vote:
    p(task) is proportional to classifier p(task) x lexical p(task) ** LEXICAL_WEIGHT, so
    the two disagree only where one is much surer than the other (the encoder reads
    meaning; the rules read code syntax and error names). Complexity is the mean of both.
    The analyzer name says who decided: "classifier", or "lexical>classifier" when the
    lexical evidence overturned the classifier's first choice.
    """
    if classifier is None:
        return lexical
    complexity = (lexical.complexity + classifier.complexity) / 2.0
    floor = 1e-9  # a rule-free task keeps a little mass, so one zero cannot veto
    joint = {t: max(classifier.probabilities[t], floor) * max(lexical.probabilities[t], floor) ** LEXICAL_WEIGHT
             for t in TASKS}
    combined = PromptAnalysis.from_probabilities(joint, complexity, classifier.analyzer)
    if combined.task != classifier.task:
        return replace(combined, analyzer=f"{lexical.analyzer}>{classifier.analyzer}")
    return combined


class OnnxPromptClassifier:
    """Tokenizer + onnxruntime session over the exported classifier graph; batches freely."""

    name = NAME

    def __init__(self, onnx_path: Path, tokenizer_path: Path, threads: int = 1, max_tokens: int = MAX_TOKENS) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # pad to the longest prompt of the batch, not to a fixed 128: short prompts stay short
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        names = tuple(i.name for i in self.session.get_inputs())
        if names != INPUT_NAMES:
            raise ValueError(f"{onnx_path}: inputs {names}, expected {INPUT_NAMES} (rebuild with build-classifier)")

    @classmethod
    def from_folder(cls, folder: Path, threads: int = 1) -> OnnxPromptClassifier:
        return cls(folder / ONNX_FILE, folder / TOKENIZER_FILE, threads=threads)

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return ids, mask

    def predict(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities [n, 4] in TASKS order, complexity [n]) for n prompts."""
        if not texts:
            return np.zeros((0, len(TASKS)), np.float32), np.zeros((0,), np.float32)
        ids, mask = self.encode(texts)
        feeds = dict(zip(INPUT_NAMES, (ids, mask, char_ngram_features(texts)), strict=True))
        probabilities, complexity = self.session.run(list(OUTPUT_NAMES), feeds)
        return probabilities, complexity.reshape(-1)

    def analyze(self, prompt: str) -> PromptAnalysis:
        probabilities, complexity = self.predict([prompt])
        return analysis_from_outputs(probabilities[0], complexity[0])


class TwoStageAnalyzer:
    """The router's analyser: lexical first; the classifier only when the lexical one is unsure.

        analyzer = TwoStageAnalyzer(LexicalAnalyzer(), classify=call_prompt_classifier_via_bls)
        analyzer.analyze("Write a haiku about recursion").analyzer  # 'lexical', 'classifier', ...

    `classify(prompt)` returns the classifier's PromptAnalysis (analysis_from_outputs of a
    BLS response), or None when the classifier is not loaded; if it raises, the lexical
    analysis stands and the analyzer name says the classifier was unavailable.
    """

    name = "two-stage"

    def __init__(self, lexical, classify: Callable[[str], PromptAnalysis | None]) -> None:
        self.lexical = lexical
        self.classify = classify

    def analyze(self, prompt: str) -> PromptAnalysis:
        fast = self.lexical.analyze(prompt)
        if self.lexical.is_confident(fast):
            return fast
        try:
            slow = self.classify(prompt)
        except Exception:
            LOGGER.warning("prompt classifier call failed; using the lexical analysis", exc_info=True)
            return replace(fast, analyzer=f"{fast.analyzer} (classifier unavailable)")
        if slow is None:
            return replace(fast, analyzer=f"{fast.analyzer} (classifier not loaded)")
        return combine(fast, slow)


class ClassifierAnalyzer:
    """The classifier alone (the 'classifier' policy of an A/B test); lexical only when it is away.

        analyzer = ClassifierAnalyzer(classify=call_prompt_classifier_via_bls, fallback=LexicalAnalyzer())
    """

    name = "classifier"

    def __init__(self, classify: Callable[[str], PromptAnalysis | None], fallback) -> None:
        self.classify = classify
        self.fallback = fallback

    def analyze(self, prompt: str) -> PromptAnalysis:
        try:
            answer = self.classify(prompt)
        except Exception:
            LOGGER.warning("prompt classifier call failed; using the fallback analysis", exc_info=True)
            answer = None
        if answer is not None:
            return answer
        fallback = self.fallback.analyze(prompt)
        return replace(fallback, analyzer=f"{fallback.analyzer} (classifier unavailable)")
