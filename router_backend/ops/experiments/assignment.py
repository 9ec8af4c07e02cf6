"""Which arm a request gets: a stable hash of (experiment, user), or a random draw without a user.

    arm = pick_arm(experiment.arms, user_bucket("creative-small", "alice"))   # same arm every time

The hash is SHA-256, not Python's hash(): that one is salted per process, and the router,
its restarts and its replicas must all agree on a user's arm.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from pointsman.ops.experiments.definition import ArmDef


@dataclass(frozen=True)
class Assignment:
    """The arm a request was put in: use `model` instead of scoring, or analyse with `policy`."""

    experiment: str
    arm: str
    model: str | None
    policy: str | None
    sticky: bool  # True: chosen by the user's hash; False: random, no user given


def user_bucket(experiment: str, user: str) -> float:
    """A number in [0, 1) fixed by experiment and user; independent across experiments."""
    digest = hashlib.sha256(f"{experiment}\x00{user}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def pick_arm(arms: Sequence[ArmDef], u: float) -> ArmDef:
    """The arm whose share of the cumulative weights holds u (0 <= u < 1)."""
    total = sum(a.weight for a in arms)
    edge = 0.0
    for arm in arms:
        edge += arm.weight / total
        if u < edge:
            return arm
    return arms[-1]  # u within rounding of 1.0
