"""Hashed character n-grams, the classifier's language-independent features: stable, bounded, word-aware."""

from __future__ import annotations

import numpy as np
import pytest

from pointsman.policy.analysis.char_ngrams import MAX_CHARS, NGRAM_DIM, char_ngram_features, ngram_buckets


def fnv1a_bucket(gram: str, dim: int = NGRAM_DIM) -> int:
    """The bucket of one n-gram, computed the slow, obvious way: FNV-1a 64 over its code points."""
    h = 0xCBF29CE484222325
    for char in gram:
        h = ((h ^ ord(char)) * 0x100000001B3) % 2 ** 64
    return (h ^ (h >> 32)) % dim


def reference_buckets(text: str, n_max: int = 5) -> list[int]:
    words = [f" {w} " for w in text.lower().split()]
    return sorted(fnv1a_bucket(w[i:i + n]) for w in words for n in range(1, n_max + 1) for i in range(len(w) - n + 1))


def test_each_row_has_unit_length_and_an_empty_prompt_is_all_zero():
    features = char_ngram_features(["def add(a, b):", "écris un poème sur la mer", "   "])

    assert features.shape == (3, NGRAM_DIM) and features.dtype == np.float32
    assert np.linalg.norm(features, axis=1) == pytest.approx([1.0, 1.0, 0.0])


@pytest.mark.parametrize("text", ["AB", "ab cd", "x", "Warum bekomme ich 'ModuleNotFoundError'?",
                                  "Pythonでリストを逆順にする方法", "def f(x):\n    return x ** 2  # 🙂"])
def test_buckets_are_every_n_gram_inside_space_padded_lower_cased_words(text):
    assert sorted(ngram_buckets(text).tolist()) == reference_buckets(text)


def test_no_n_gram_crosses_from_one_word_into_the_next():
    apart = ngram_buckets("ab").tolist() + ngram_buckets("cd").tolist()

    assert sorted(ngram_buckets("ab cd").tolist()) == sorted(apart)


def test_a_character_outside_ascii_is_one_character_not_its_bytes():
    assert len(ngram_buckets("é", n_max=1)) == 3  # " ", "é", " "


def test_only_the_first_max_chars_count():
    head = "word " * (MAX_CHARS // 5)

    assert ngram_buckets(head + "tail " * 100).tolist() == ngram_buckets(head).tolist()


def test_a_shared_word_in_two_languages_gives_overlapping_features():
    poem_fr, poem_pt, code = char_ngram_features(["écris un poème", "escreva um poema", "fix this segfault"])

    assert poem_fr @ poem_pt > poem_fr @ code
