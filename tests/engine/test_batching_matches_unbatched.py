"""In-flight batching on the real exported demo models gives exactly the unbatched greedy tokens.

    .venv/bin/pytest -q tests/engine

Prompts of different lengths share batches (rows of the in-place KV buffer, each with its
own length), some join while others are decoding and some leave early; each sequence's
tokens must equal greedy_reference run on it alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pointsman.engine.decoder import Decoder, load_decoder
from pointsman.engine.scheduler import EngineLimits, GenerationEngine, GenerationRequest, greedy_reference
from pointsman.engine.tokenizer import TextTokenizer
from pointsman.export.repository import engine_name

REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"
MODELS = ["gpt2", "distilgpt2", "codegen"]
# (prompt, new tokens): lengths from one token to a few dozen, finishing at different steps
PROMPTS = [
    ("def add(a, b):", 24),
    ("The", 9),
    ("Once upon a time, in a land far away, there lived a programmer who wrote tests for everything", 17),
    ("import numpy as np\n\nclass Matrix:\n    def __init__(self, rows):", 30),
    ("Q: what is two plus two?\nA:", 5),
    ("for i in range(10):", 21),
]
LATE = [("Hello world, this joins while others decode", 12), ("x", 15)]


@pytest.fixture(scope="module", params=MODELS)
def model(request) -> tuple[str, Decoder, TextTokenizer]:
    folder = REPOSITORY / engine_name(request.param) / "1"
    missing = [p.name for p in (folder / "model.onnx", folder / "tokenizer.json") if not p.exists()]
    if missing:
        pytest.fail(f"{folder} lacks {', '.join(missing)}: run `make setup` to build and export the demo models")
    return (request.param, load_decoder(str(folder / "model.onnx"), threads=2, providers="cpu"),
            TextTokenizer.from_file(str(folder / "tokenizer.json")))


class Collect:
    """Minimal sink: keeps the result; submits the late requests after a few pieces."""

    def __init__(self, after_pieces=None) -> None:
        self.result = None
        self.error = None
        self.pieces = 0
        self._after_pieces = after_pieces

    def on_text(self, piece: str, tokens: int) -> None:
        self.pieces += 1
        if self._after_pieces is not None:
            self._after_pieces(self.pieces)

    def on_finish(self, result) -> None:
        self.result = result

    def on_error(self, error: Exception) -> None:
        self.error = error

    def cancelled(self) -> bool:
        return False


@pytest.mark.parametrize("max_num_seqs", [4, 16])
def test_batched_greedy_tokens_equal_unbatched_greedy_reference(model, max_num_seqs: int) -> None:
    name, decoder, tokenizer = model
    engine = GenerationEngine(decoder, tokenizer, eos_id=None, limits=EngineLimits(max_num_seqs=max_num_seqs))

    def request(text: str, n: int) -> GenerationRequest:
        return GenerationRequest(prompt_ids=tuple(tokenizer.encode(text)), max_new_tokens=n, stream=True,
                                 ignore_eos=True)

    late_sinks = [Collect() for _ in LATE]

    def submit_late(pieces: int) -> None:
        if pieces == 3:  # mid-flight: the first request has made three tokens
            for (text, n), sink in zip(LATE, late_sinks, strict=True):
                engine.submit(request(text, n), sink)

    sinks = [Collect(submit_late)] + [Collect() for _ in PROMPTS[1:]]
    for (text, n), sink in zip(PROMPTS, sinks, strict=True):
        engine.submit(request(text, n), sink)
    engine.run_until_idle()

    assert engine.stats().mean_batch > 1.5, "the requests should have shared decoding steps"
    for (text, n), sink in zip(PROMPTS + LATE, sinks + late_sinks, strict=True):
        assert sink.error is None, f"{name}: {sink.error}"
        expected = greedy_reference(decoder, tokenizer.encode(text), n)
        assert list(sink.result.token_ids) == expected, f"{name}: batched tokens differ for {text!r}"
