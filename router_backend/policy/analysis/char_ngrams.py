"""Hashed character n-grams: language-independent features beside the MiniLM embedding.

    features = char_ngram_features(["def add(a, b):", "écris un poème"])   # [2, NGRAM_DIM] float32
    features[0] @ features[0]  # 1.0: each row has unit length

all-MiniLM-L6-v2 was trained on English; a prompt in Japanese or Portuguese reaches it as
sub-word pieces it barely knows. Character n-grams need no vocabulary: "poesia", "poème"
and "Gedicht" share no embedding direction, but the head learns each n-gram's vote from
the hand-written training prompts. Word-boundary aware (each lower-cased word padded with
a space, as scikit-learn's `char_wb`), n from 1 to 5, hashed with CRC-32 (stable across
processes and machines, unlike `hash()`) into NGRAM_DIM buckets, log(1 + count), then L2
normalised so the block has the embedding's scale. Training (export/classifier.py) and
serving (OnnxPromptClassifier) call this one function.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

NGRAM_DIM = 2 ** 14  # buckets; 4 x 16384 head weights (256 KB), few collisions for prompt vocabularies
NGRAM_MAX = 5  # n = 1 .. 5
MAX_CHARS = 2000  # a long paste adds little evidence after this, and costs time


def ngram_buckets(text: str, dim: int = NGRAM_DIM, n_max: int = NGRAM_MAX) -> list[int]:
    """Bucket of every character n-gram (n = 1..n_max) inside each space-padded lower-cased word."""
    buckets = []
    for word in text[:MAX_CHARS].lower().split():
        padded = f" {word} "  # n-grams of characters: slicing UTF-8 bytes would split a character
        for n in range(1, n_max + 1):
            buckets.extend(zlib.crc32(padded[start:start + n].encode()) % dim for start in range(len(padded) - n + 1))
    return buckets


def char_ngram_features(texts: Sequence[str], dim: int = NGRAM_DIM) -> np.ndarray:
    """[len(texts), dim] float32: log(1 + count) per bucket, each row of unit length (or all zero)."""
    out = np.zeros((len(texts), dim), np.float32)
    for row, text in enumerate(texts):
        buckets = ngram_buckets(text, dim)
        if not buckets:
            continue
        counts = np.log1p(np.bincount(buckets, minlength=dim).astype(np.float32))
        out[row] = counts / np.linalg.norm(counts)
    return out
