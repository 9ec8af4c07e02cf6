"""Next-token choice: greedy, seeded sampling, top-k, top-p and temperature."""

from __future__ import annotations

import numpy as np
import pytest

from pointsman.engine.sampling import Sampler, SamplingParams, sampling_support


def filtered_probabilities(logits: np.ndarray, params: SamplingParams) -> np.ndarray:
    """The distribution a Sampler draws from, over the whole vocabulary (zeros outside its support)."""
    ids, probs = sampling_support(logits, params)
    if ids is None:
        return probs
    full = np.zeros(logits.shape[0], dtype=np.float64)
    full[ids] = probs
    return full

# softmax at temperature 1 gives exactly these probabilities
PROBS = np.array([0.05, 0.5, 0.15, 0.3])
LOGITS = np.log(PROBS)
RANDOM_LOGITS = np.random.default_rng(0).standard_normal(64)


@pytest.mark.parametrize("params", [
    SamplingParams(),
    SamplingParams(temperature=0.0, top_k=5, top_p=0.5, seed=3),
    SamplingParams(temperature=1.5, top_k=1),
])
def test_greedy_choice_is_argmax(params: SamplingParams) -> None:
    sampler = Sampler(params)
    for row in np.random.default_rng(1).standard_normal((20, 64)):
        assert sampler.choose(row) == int(np.argmax(row))


def test_top_k_one_is_greedy() -> None:
    assert SamplingParams(temperature=1.0, top_k=1).greedy


@pytest.mark.parametrize("params", [
    SamplingParams(temperature=1.0, seed=7),
    SamplingParams(temperature=0.7, top_k=10, seed=123),
    SamplingParams(temperature=1.3, top_p=0.9, seed=2**40),
])
def test_same_seed_gives_same_choices(params: SamplingParams) -> None:
    first, second = Sampler(params), Sampler(params)
    assert [first.choose(RANDOM_LOGITS) for _ in range(50)] == [second.choose(RANDOM_LOGITS) for _ in range(50)]


def test_different_seeds_give_different_choices() -> None:
    firsts = {Sampler(SamplingParams(temperature=1.0, seed=seed)).choose(RANDOM_LOGITS) for seed in range(20)}
    assert len(firsts) > 1


@pytest.mark.parametrize("top_k", [1, 2, 5, 63])
def test_top_k_restricts_support_to_the_k_largest_logits(top_k: int) -> None:
    probs = filtered_probabilities(RANDOM_LOGITS, SamplingParams(temperature=1.0, top_k=top_k))
    assert set(np.flatnonzero(probs)) == set(np.argsort(-RANDOM_LOGITS)[:top_k])
    assert probs.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("top_k", [0, 64, 1000])
def test_top_k_zero_or_beyond_vocab_keeps_every_token(top_k: int) -> None:
    probs = filtered_probabilities(RANDOM_LOGITS, SamplingParams(temperature=1.0, top_k=top_k))
    assert np.count_nonzero(probs) == RANDOM_LOGITS.size


def test_sampled_tokens_stay_within_top_k() -> None:
    sampler = Sampler(SamplingParams(temperature=2.0, top_k=3, seed=0))
    allowed = set(np.argsort(-RANDOM_LOGITS)[:3])
    assert {sampler.choose(RANDOM_LOGITS) for _ in range(300)} <= allowed


@pytest.mark.parametrize(("top_p", "kept"), [
    (0.4, {1}),           # the top token alone already holds 0.5
    (0.6, {1, 3}),        # 0.5 + 0.3
    (0.9, {1, 3, 2}),     # 0.5 + 0.3 + 0.15
    (0.99, {0, 1, 2, 3}),
    (1.0, {0, 1, 2, 3}),
])
def test_top_p_keeps_the_smallest_prefix_reaching_p(top_p: float, kept: set[int]) -> None:
    probs = filtered_probabilities(LOGITS, SamplingParams(temperature=1.0, top_p=top_p))
    assert set(np.flatnonzero(probs)) == kept
    expected = np.where(np.isin(np.arange(4), list(kept)), PROBS, 0.0)
    np.testing.assert_allclose(probs, expected / expected.sum())


def test_top_p_always_keeps_at_least_one_token() -> None:
    probs = filtered_probabilities(LOGITS, SamplingParams(temperature=1.0, top_p=1e-9))
    assert np.flatnonzero(probs).tolist() == [1]


def test_temperature_one_is_plain_softmax() -> None:
    np.testing.assert_allclose(filtered_probabilities(LOGITS, SamplingParams(temperature=1.0)), PROBS)


@pytest.mark.parametrize(("cooler", "hotter"), [(0.1, 0.5), (0.5, 1.0), (1.0, 2.0), (2.0, 10.0)])
def test_higher_temperature_flattens_the_distribution(cooler: float, hotter: float) -> None:
    def entropy(t: float) -> float:
        p = filtered_probabilities(LOGITS, SamplingParams(temperature=t))
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    assert entropy(hotter) > entropy(cooler)


def test_low_temperature_concentrates_on_the_argmax() -> None:
    probs = filtered_probabilities(LOGITS, SamplingParams(temperature=0.01))
    assert probs[1] > 0.999


def test_sampling_frequencies_follow_the_probabilities() -> None:
    sampler = Sampler(SamplingParams(temperature=1.0, seed=11))
    counts = np.bincount([sampler.choose(LOGITS) for _ in range(4000)], minlength=4) / 4000
    np.testing.assert_allclose(counts, PROBS, atol=0.03)


def whole_sort_nucleus(probs: np.ndarray, top_p: float) -> list[int]:
    """The nucleus by a stable sort of the whole vector: the reference the candidate shortcut must equal."""
    order = np.argsort(-probs, kind="stable")
    cutoff = int(np.searchsorted(np.cumsum(probs[order]), top_p)) + 1
    return sorted(order[:cutoff].tolist())


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max())
    return e / e.sum()


@pytest.mark.parametrize("scale", [8.0, 3.0, 0.3])  # peaked (a short nucleus) to flat (most of the vocabulary)
@pytest.mark.parametrize("top_p", [0.5, 0.9, 0.99])
def test_nucleus_of_a_large_vocabulary_equals_the_whole_sort(scale: float, top_p: float) -> None:
    from pointsman.engine.sampling import nucleus

    logits = np.random.default_rng(5).standard_normal(32000) * scale
    logits[0] = logits[-1] = logits.max() + 0.5  # the two likeliest tokens first and last: both ends must be kept
    probs = softmax(logits)
    assert nucleus(probs, top_p).tolist() == whole_sort_nucleus(probs, top_p)


@pytest.mark.parametrize("top_p", [0.3, 0.8])
def test_nucleus_keeps_the_whole_sorts_order_among_tied_tokens(top_p: float) -> None:
    from pointsman.engine.sampling import SORTED_IDS, nucleus

    # logits on a coarse grid: hundreds of tokens share each value, the nucleus ends among them
    logits = np.round(np.random.default_rng(6).standard_normal(4 * SORTED_IDS) * 2) * 2
    probs = softmax(logits)
    assert nucleus(probs, top_p).tolist() == whole_sort_nucleus(probs, top_p)


def test_nucleus_falls_back_to_the_whole_sort_when_the_likely_tokens_fall_short() -> None:
    from pointsman.engine.sampling import nucleus

    # mass short of 1, as rounding could leave it: the likely tokens cannot reach p, nor can all
    probs = softmax(np.random.default_rng(7).standard_normal(32000) * 4) * 0.95
    assert nucleus(probs, 0.99).tolist() == whole_sort_nucleus(probs, 0.99) == list(range(32000))


@pytest.mark.parametrize("params", [
    SamplingParams(temperature=0.8, top_p=0.9),
    SamplingParams(temperature=1.0, top_k=50),
    SamplingParams(temperature=0.7, top_k=200, top_p=0.8),
    SamplingParams(temperature=1.2),
])
def test_drawing_among_the_kept_tokens_equals_drawing_over_the_whole_vocabulary(params: SamplingParams) -> None:
    logits = np.random.default_rng(8).standard_normal(32000).astype(np.float32) * 4
    full = filtered_probabilities(logits, params)
    for seed in range(40):
        kept = Sampler(SamplingParams(**{**params.__dict__, "seed": seed})).choose(logits)
        assert kept == int(np.random.default_rng(seed).choice(full.shape[0], p=full))
