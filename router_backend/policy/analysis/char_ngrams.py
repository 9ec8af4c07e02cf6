"""Hashed character n-grams: language-independent features beside the MiniLM embedding.

    features = char_ngram_features(["def add(a, b):", "écris un poème"])   # [2, NGRAM_DIM] float32
    features[0] @ features[0]  # 1.0: each row has unit length

all-MiniLM-L6-v2 was trained on English; a prompt in Japanese or Portuguese reaches it as
sub-word pieces it barely knows. Character n-grams need no vocabulary: "poesia", "poème"
and "Gedicht" share no embedding direction, but the head learns each n-gram's vote from
the hand-written training prompts. Word-boundary aware (each lower-cased word padded with
a space, as scikit-learn's `char_wb`), n from 1 to 5, hashed with 64-bit FNV-1a over code
points (stable across processes and machines, unlike `hash()`; computed for every n-gram
of a prompt at once in numpy, so a long paste costs microseconds, not a Python loop) into
NGRAM_DIM buckets, log(1 + count), then L2 normalised so the block has the embedding's
scale. Training (export/classifier.py) and serving (OnnxPromptClassifier) call this one
function.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NGRAM_DIM = 2 ** 14  # buckets; 4 x 16384 head weights (256 KB), few collisions for prompt vocabularies
NGRAM_MAX = 5  # n = 1 .. 5
MAX_CHARS = 2000  # a long paste adds little evidence after this, and costs time


FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)


def ngram_buckets(text: str, dim: int = NGRAM_DIM, n_max: int = NGRAM_MAX) -> np.ndarray:
    """Bucket of every character n-gram (n = 1..n_max) inside each space-padded lower-cased word.

    FNV-1a over code points, one step per n: the hash of text[i:i+n] is the hash of
    text[i:i+n-1] extended by text[i+n-1], for every i at once. The bucket is the hash's
    two halves xor-ed, modulo dim.
    """
    words = text[:MAX_CHARS].lower().split()
    if not words:
        return np.zeros(0, np.int64)
    padded = "".join(f" {word} " for word in words)
    points = np.frombuffer(padded.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    word_of = np.repeat(np.arange(len(words)), [len(word) + 2 for word in words])  # which word each character is in
    hashes = np.full(len(points), FNV_OFFSET, np.uint64)
    buckets = []
    for n in range(1, n_max + 1):
        count = len(points) - n + 1
        if count <= 0:
            break
        hashes = (hashes[:count] ^ points[n - 1:n - 1 + count]) * FNV_PRIME  # uint64: wraps modulo 2**64
        inside = word_of[:count] == word_of[n - 1:n - 1 + count]  # the n-gram does not cross into the next word
        folded = hashes[inside] ^ (hashes[inside] >> np.uint64(32))
        buckets.append((folded % np.uint64(dim)).astype(np.int64))
    return np.concatenate(buckets)


def char_ngram_features(texts: Sequence[str], dim: int = NGRAM_DIM) -> np.ndarray:
    """[len(texts), dim] float32: log(1 + count) per bucket, each row of unit length (or all zero)."""
    out = np.zeros((len(texts), dim), np.float32)
    for row, text in enumerate(texts):
        buckets = ngram_buckets(text, dim)
        if not len(buckets):
            continue
        counts = np.log1p(np.bincount(buckets, minlength=dim).astype(np.float32))
        out[row] = counts / np.linalg.norm(counts)
    return out
