"""The workload of the locust users, apart from locust so it can be tested without gevent.

    workload = Workload(parse_weights("manual=1,auto=2"), ("gpt2",), max_tokens=16, fallback="auto")
    request = workload.next_request(random.Random(0)); request_name(request)  # "router auto"
"""

from __future__ import annotations

import random
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pointsman.client.request import FALLBACK_MODES, GenerateRequest

MODES = ("manual", "auto", "hybrid", "direct")
DEFAULT_WEIGHTS = "manual=1,auto=1,hybrid=1,direct=0"
DEFAULT_MODELS = "gpt2,distilgpt2,codegen"

# one prompt per task the router tells apart, so auto-selection sees the whole range
PROMPTS = (
    "def fibonacci(n):",
    "Write a Python function that reverses a linked list.",
    "Write a short poem about rain on a tin roof.",
    "Once upon a time, in a city of glass,",
    "What is the capital of France?",
    "Who wrote the theory of general relativity?",
    "If all bloops are razzies and all razzies are lazzies, are all bloops lazzies? Explain step by step.",
    "A train leaves at 3 pm at 60 km/h; another at 4 pm at 80 km/h. When does the second catch up?",
)


def parse_weights(text: str) -> dict[str, float]:
    """'manual=1,auto=2' -> {'manual': 1.0, 'auto': 2.0, 'hybrid': 0.0, 'direct': 0.0}."""
    weights = dict.fromkeys(MODES, 0.0)
    for part in filter(None, (p.strip() for p in text.split(","))):
        mode, sep, value = part.partition("=")
        mode = mode.strip()
        if not sep or mode not in MODES:
            raise ValueError(f"--mode-weights wants MODE=WEIGHT pairs with MODE in {', '.join(MODES)}; got {part!r}")
        try:
            weights[mode] = float(value)
        except ValueError:
            raise ValueError(f"--mode-weights: {mode} weight must be a number; got {value!r}") from None
        if weights[mode] < 0:
            raise ValueError(f"--mode-weights: {mode} weight must be >= 0; got {value!r}")
    if not sum(weights.values()):
        raise ValueError("--mode-weights: at least one mode needs a weight above 0")
    return weights


def default_grpc_url(host: str) -> str:
    """http://127.0.0.1:8000 -> 127.0.0.1:8001: Triton puts gRPC one port above HTTP by default."""
    parsed = urllib.parse.urlsplit(host if "://" in host else f"http://{host}")
    return f"{parsed.hostname}:{(parsed.port or 80) + 1}"


@dataclass(frozen=True)
class Workload:
    """What the users send, from the command line."""

    weights: Mapping[str, float]
    models: tuple[str, ...]
    max_tokens: int
    fallback: str

    @classmethod
    def from_options(cls, options: Any) -> Workload:
        models = tuple(m.strip() for m in options.models.split(",") if m.strip())
        if not models:
            raise ValueError("--models needs at least one model name")
        if options.fallback not in FALLBACK_MODES:
            raise ValueError(f"--fallback must be one of {', '.join(FALLBACK_MODES)}")
        return cls(parse_weights(options.mode_weights), models, int(options.max_tokens), options.fallback)

    def next_request(self, rng: random.Random) -> GenerateRequest:
        modes = [m for m in MODES if self.weights[m] > 0]
        mode = rng.choices(modes, weights=[self.weights[m] for m in modes])[0]
        prompt, model = rng.choice(PROMPTS), rng.choice(self.models)
        common = {"max_tokens": self.max_tokens}
        if mode == "manual":
            return GenerateRequest(prompt, model=model, **common)
        if mode == "auto":
            return GenerateRequest(prompt, auto=True, **common)
        if mode == "hybrid":
            return GenerateRequest(prompt, prefer=model, fallback=self.fallback, **common)
        return GenerateRequest(prompt, model=model, direct=True, **common)


def request_name(request: GenerateRequest) -> str:
    return "direct" if request.direct else f"router {request.mode}"


def check_answer(request: GenerateRequest, outputs: Mapping[str, Any]) -> str | None:
    """Why an answer is wrong for its request, or None when it is right."""
    if outputs.get("error"):
        return str(outputs["error"])
    if not isinstance(outputs.get("text_output"), str):
        return "no text_output in the answer"
    tokens = outputs.get("tokens")
    if not isinstance(tokens, int) or not 0 < tokens <= request.max_tokens:
        return f"tokens {tokens!r} outside 1..{request.max_tokens}"
    if request.direct:
        return None
    if outputs.get("selection_mode") != request.mode:
        return f"selection_mode {outputs.get('selection_mode')!r}, expected {request.mode!r}"
    if request.model and outputs.get("selected_model") != request.model:
        return f"selected_model {outputs.get('selected_model')!r}, expected {request.model!r}"
    if not outputs.get("selected_model"):
        return "no selected_model in the answer"
    return None
