"""Assignment: sticky per user across processes, weights honoured, random without a user."""

from __future__ import annotations

import hashlib
import math
import os
import random
import subprocess
import sys

import pytest

from pointsman.ops.experiments.assignment import pick_arm, user_bucket
from pointsman.ops.experiments.definition import parse_experiment

ARMS = parse_experiment({"name": "e", "arms": [{"name": "a", "model": "gpt2", "weight": 1},
                                                {"name": "b", "model": "distilgpt2", "weight": 3}]}).arms


@pytest.mark.parametrize(("u", "arm"), [(0.0, "a"), (0.2499, "a"), (0.25, "b"), (0.9999999, "b")])
def test_pick_arm_splits_the_unit_interval_by_weight(u, arm) -> None:
    assert pick_arm(ARMS, u).name == arm


def test_user_bucket_is_sha256_of_experiment_and_user() -> None:
    # pinned: changing the hash would move every running experiment's users to other arms
    expected = int(hashlib.sha256(b"creative-small\x00alice").hexdigest()[:16], 16) / 2**64
    assert user_bucket("creative-small", "alice") == expected == pytest.approx(0.8100336849642173)
    assert user_bucket("creative-small", "alice") != user_bucket("other-experiment", "alice")


def test_user_bucket_is_the_same_in_another_process_with_another_hash_seed() -> None:
    code = "from pointsman.ops.experiments.assignment import user_bucket; print(repr(user_bucket('e', 'bob')))"
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert float(out.stdout) == user_bucket("e", "bob")


@pytest.mark.parametrize("weights", [(1, 1), (1, 3), (70, 20, 10)])
def test_weights_are_honoured_over_many_users_within_four_sigma(weights) -> None:
    arms = parse_experiment({"name": "w", "arms": [{"name": f"arm{i}", "model": "m", "weight": w}
                                                   for i, w in enumerate(weights)]}).arms
    n = 20_000
    counts = {a.name: 0 for a in arms}
    for i in range(n):
        counts[pick_arm(arms, user_bucket("w", f"user-{i}")).name] += 1
    for arm in arms:
        p = arm.weight / sum(weights)
        assert abs(counts[arm.name] - n * p) < 4 * math.sqrt(n * p * (1 - p)), counts


def test_buckets_of_two_experiments_are_independent() -> None:
    # a user's arm in one experiment says nothing about the other: the 2x2 split is ~25% each
    n = 8_000
    both = sum(1 for i in range(n) if user_bucket("x", str(i)) < 0.5 and user_bucket("y", str(i)) < 0.5)
    assert abs(both - n / 4) < 4 * math.sqrt(n * 0.25 * 0.75)


def test_random_draws_follow_the_weights_too() -> None:
    rng = random.Random(7)
    n = 10_000
    b = sum(pick_arm(ARMS, rng.random()).name == "b" for _ in range(n))
    assert abs(b - 0.75 * n) < 4 * math.sqrt(n * 0.75 * 0.25)
