"""Waiting until the router has picked up an experiment: it reloads them at most once a second."""

from __future__ import annotations

from tests.waiting import wait_until


def router_applies(triton, experiment: str, timeout: float = 10.0) -> bool:
    """Whether the router puts auto requests into `experiment` within `timeout` (it reloads once a second).

    Asked with requests of its own (user "warm-up"); a selection reason naming the
    experiment and arm ends the wait, so exactly one of them joins the experiment.
    """
    def reason() -> str:
        status, answer = triton.generate("router", {"text_input": "Write a short poem about the sea",
                                                    "max_tokens": 1, "auto_select": True, "user": "warm-up"})
        return answer.get("selection_reason", "") if status == 200 else ""

    return wait_until(lambda: reason().startswith(f"experiment {experiment}, arm "), timeout=timeout)
