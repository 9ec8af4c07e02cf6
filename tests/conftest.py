"""Shared fakes for the engine tests: a decoder, a tokenizer and a recording sink.

    def test_something(make_engine, make_sink):
        engine, decoder = make_engine(max_num_seqs=2); sink = make_sink(); ...

Fixtures: fake_decoder, fake_tokenizer, make_sink (RecordingSink), make_engine (an
engine over a fresh FakeDecoder; returns both). The fake decoder keeps each sequence's
token history inside its KV cache (one layer, key and value shaped [1, 1, L, 1]), so its
logits are a deterministic function of that history alone: batched decoding must give
exactly what each sequence gives alone. The fake tokenizer maps one character to one id;
a prompt with "?" fails in prefill, one with "!" in every decode step.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from pointsman.engine.decoder import KVCache
from pointsman.engine.scheduler import EngineLimits, GenerationEngine, GenerationResult

pytest_plugins = ["tests.postgres.database"]  # postgres_url, postgres_database: a real PostgreSQL

VOCAB = "\x00abcdefghijklmnopqrstuvwxyz.,!? "  # id 0 is EOS (decodes to nothing)
EOS_ID = 0
POISON_PREFILL = VOCAB.index("?")  # a prompt holding it fails in prefill
POISON_DECODE = VOCAB.index("!")  # a prompt holding it fails in every decode step


class FakeDecoderError(RuntimeError):
    """Raised by the fake decoder on poisoned input."""


class FakeDecoder:
    """Decoder protocol fake: logits depend only on the token history; records every call.

    With eos_at_length=N the history of length N or more makes EOS the argmax; otherwise
    EOS is never the argmax, so greedy decoding runs to max_new_tokens. It never emits the
    poison tokens itself (a prompt holding one fails in prefill or in every decode step).
    """

    def __init__(self, eos_at_length: int | None = None) -> None:
        self.eos_at_length = eos_at_length
        self.batch_sizes: list[int] = []  # decode_batch calls, rows in each
        # ("prefill", prompt length) / ("prefill_batch", prompts) / ("decode", rows)
        self.events: list[tuple[str, int]] = []
        self.prefilled: list[KVCache] = []  # every cache prefill handed out
        self.released: list[KVCache] = []  # every cache given back through release
        self.reservations: list[tuple[int, int, int]] = []  # (rows, tokens, caches prefilled by then)
        self.trimmed = threading.Event()  # set when the engine asked trim

    def logits(self, history: Sequence[int]) -> np.ndarray:
        seed = zlib.crc32(np.asarray(history, dtype=np.int64).tobytes())
        out = np.random.default_rng(seed).standard_normal(len(VOCAB))
        out[[POISON_PREFILL, POISON_DECODE]] = -30.0  # only prompts carry poison
        out[EOS_ID] = 10.0 if self.eos_at_length is not None and len(history) >= self.eos_at_length else -30.0
        return out

    @staticmethod
    def history(cache: KVCache) -> list[int]:
        return [int(t) for t in cache[0][0, 0, :, 0]]

    @staticmethod
    def _cache(history: Sequence[int]) -> KVCache:
        key = np.asarray(history, dtype=np.float32).reshape(1, 1, -1, 1)
        return [key, -key]

    def prefill(self, prompt_ids: Sequence[int]) -> tuple[np.ndarray, KVCache]:
        self.events.append(("prefill", len(prompt_ids)))
        if POISON_PREFILL in prompt_ids:
            raise FakeDecoderError("poisoned prompt")
        cache = self._cache(prompt_ids)
        self.prefilled.append(cache)
        return self.logits(prompt_ids), cache

    def prefill_batch(self, prompts: Sequence[Sequence[int]]) -> tuple[np.ndarray, list[KVCache]]:
        """Several prompts in one pass: a poisoned one fails the whole pass, as a real batched run would."""
        self.events.append(("prefill_batch", len(prompts)))
        if any(POISON_PREFILL in p for p in prompts):
            raise FakeDecoderError("poisoned prompt in a batched prefill")
        caches = [self._cache(p) for p in prompts]
        self.prefilled.extend(caches)
        return np.stack([self.logits(p) for p in prompts]), caches

    def decode_batch(self, steps: Sequence[tuple[int, KVCache]]) -> tuple[np.ndarray, list[KVCache]]:
        self.batch_sizes.append(len(steps))
        self.events.append(("decode", len(steps)))
        histories = []
        for token, cache in steps:
            assert len(cache) == 2 and cache[0].ndim == 4 and cache[0].shape[0] == 1, "cache is [1, H, L, D]"
            histories.append(self.history(cache) + [token])
        if any(POISON_DECODE in h for h in histories):
            raise FakeDecoderError("poisoned sequence in batch")
        return np.stack([self.logits(h) for h in histories]), [self._cache(h) for h in histories]

    def release(self, cache: KVCache) -> None:
        self.released.append(cache)

    def reserve(self, rows: int, length: int) -> None:
        self.reservations.append((rows, length, len(self.prefilled)))

    def trim(self) -> None:
        self.trimmed.set()


class FakeTokenizer:
    """One character per id; EOS decodes to nothing, like a skipped special token."""

    def encode(self, text: str) -> list[int]:
        return [VOCAB.index(c) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(VOCAB[i] for i in ids if i != EOS_ID)


class RecordingSink:
    """TokenSink that records everything; on_piece runs after each piece (to act mid-flight)."""

    def __init__(self, on_piece: Callable[[RecordingSink], None] | None = None,
                 cancel_after: int | None = None) -> None:
        self.pieces: list[str] = []
        self.piece_times: list[float] = []
        self.piece_tokens: list[int] = []  # tokens generated when each piece was sent
        self.results: list[GenerationResult] = []
        self.errors: list[Exception] = []
        self.done = threading.Event()
        self.cancel_after = cancel_after
        self._on_piece = on_piece
        self._cancelled = False

    def on_text(self, piece: str, tokens: int) -> None:
        self.pieces.append(piece)
        self.piece_tokens.append(tokens)
        self.piece_times.append(time.perf_counter())
        if self.cancel_after is not None and len(self.pieces) >= self.cancel_after:
            self._cancelled = True
        if self._on_piece is not None:
            self._on_piece(self)

    def on_finish(self, result: GenerationResult) -> None:
        self.results.append(result)
        self.done.set()

    def on_error(self, error: Exception) -> None:
        self.errors.append(error)
        self.done.set()

    def cancel(self) -> None:
        self._cancelled = True

    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def result(self) -> GenerationResult:
        assert len(self.results) == 1 and not self.errors, f"results={self.results} errors={self.errors}"
        return self.results[0]


@pytest.fixture
def fake_tokenizer() -> FakeTokenizer:
    return FakeTokenizer()


@pytest.fixture
def make_sink() -> Callable[..., RecordingSink]:
    return RecordingSink


@pytest.fixture
def make_engine(fake_tokenizer: FakeTokenizer) -> Callable[..., tuple[GenerationEngine, FakeDecoder]]:
    """Build an engine over a fresh FakeDecoder from EngineLimits fields and an optional eos_at_length."""

    def build(eos_at_length: int | None = None, **limits) -> tuple[GenerationEngine, FakeDecoder]:
        decoder = FakeDecoder(eos_at_length)
        return GenerationEngine(decoder, fake_tokenizer, EOS_ID, EngineLimits(**limits)), decoder

    return build


@pytest.fixture
def fake_decoder() -> FakeDecoder:
    return FakeDecoder()


@pytest.fixture
def fake_pb_utils(monkeypatch: pytest.MonkeyPatch):
    """An empty triton_python_backend_utils, so an adapter module imports outside the stub.

    Only for reading what an adapter declares at import time (its tensor types); nothing
    that calls into Triton may run against it.
    """
    import sys
    import types

    module = types.ModuleType("triton_python_backend_utils")
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", module)
    return module
