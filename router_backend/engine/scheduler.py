"""In-flight batching: active sequences of one model decode together, one step at a time.

    engine = GenerationEngine(decoder, tokenizer, eos_id=0, limits=EngineLimits(max_num_seqs=8))
    engine.start(); engine.submit(request, sink); ...; engine.stop()

A new request is prefilled and joins the batch at the next step; a finished or
cancelled one leaves at once, so nobody waits for the longest sequence. Requests admitted
together are prefilled together, in one pass per PREFILL_TOKENS padded tokens, when the
decoder can (prefill_batch).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from pointsman.engine.decoder import Decoder, KVCache
from pointsman.engine.detokenize import IncrementalDetokenizer
from pointsman.engine.sampling import Sampler, SamplingParams
from pointsman.engine.stop import StopMatcher
from pointsman.errors import GenerationFailed, Overloaded

LOGGER = logging.getLogger(__name__)
QUEUE_SWEEP_S = 0.05  # how often queued requests are asked whether their caller is still there
# padded prompt tokens per batched prefill pass: attention's scores grow with rows x longest^2,
# and a prompt at least this long goes alone (as it always did)
PREFILL_TOKENS = 2048


class Tokenizer(Protocol):
    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: Sequence[int]) -> str: ...


class TokenSink(Protocol):
    """Where a sequence's output goes (the adapter wraps Triton's response sender)."""

    def on_text(self, piece: str, tokens: int) -> None:
        """A streamed piece of new text (called only for streaming requests).

        tokens: how many tokens the sequence has generated, this piece's included. A piece
        can cover several tokens (a character spanning tokens waits for its last byte), so
        only this count dates a piece to its decoding step.
        """

    def on_finish(self, result: GenerationResult) -> None:
        """The final result; called exactly once unless on_error is."""

    def on_error(self, error: Exception) -> None:
        """Generation failed; called at most once, instead of on_finish."""

    def cancelled(self) -> bool:
        """True once the caller has gone away."""


@dataclass(frozen=True)
class GenerationRequest:
    prompt_ids: tuple[int, ...]
    max_new_tokens: int
    sampling: SamplingParams = SamplingParams()
    stream: bool = False
    ignore_eos: bool = False
    stop: tuple[str, ...] = ()  # generation ends when the text contains one; it is not returned


@dataclass(frozen=True)
class GenerationResult:
    text: str
    tokens: int
    finish_reason: str  # "length", "eos", "stop" (a stop sequence) or "cancelled"
    time_to_first_token_s: float
    duration_s: float
    token_ids: tuple[int, ...] = ()  # the generated tokens (a final EOS is not one of them)
    mean_logprob: float | None = None  # the model's mean log-likelihood of those tokens (a quality signal)


@dataclass(frozen=True)
class EngineLimits:
    """Bounds on one instance's memory; beyond them requests wait in the queue, up to max_queued.

    The one place that owns the engine's defaults: export writes them into a model's
    config.pbtxt parameters and the backend reads them back with from_parameters.
    max_num_seqs is vLLM's word for it, so it is never mistaken for Triton's max_batch_size.
    """

    max_num_seqs: int = 16  # sequences decoding together in one step
    max_tokens_in_flight: int = 16384  # prompt + max_tokens, summed over the admitted sequences
    batching: bool = True  # False: one sequence at a time (the benchmark baseline)
    # requests waiting for a slot; past it a request is refused at once ("overloaded, retry"),
    # so a burst cannot queue work nobody will wait for
    max_queued: int = 128
    # an idle engine keeps its KV cache's memory this long, so a burst soon after a lull finds it
    # already backed (a fresh gigabyte cost seconds of page faults here); then gives it back
    keep_cache_idle_s: float = 30.0

    def as_parameters(self) -> dict[str, str]:
        """The config.pbtxt parameters that carry these limits."""
        return {"max_num_seqs": str(self.max_num_seqs), "max_tokens_in_flight": str(self.max_tokens_in_flight),
                "batching": str(self.batching).lower(), "max_queued": str(self.max_queued),
                "keep_cache_idle_s": f"{self.keep_cache_idle_s:g}"}

    @classmethod
    def from_parameters(cls, params: dict[str, str]) -> EngineLimits:
        """Limits from config.pbtxt parameters; a missing one keeps its default."""
        default = cls()
        try:
            return cls(max_num_seqs=int(params.get("max_num_seqs", default.max_num_seqs)),
                       max_tokens_in_flight=int(params.get("max_tokens_in_flight", default.max_tokens_in_flight)),
                       batching=str(params.get("batching", default.batching)).lower() == "true",
                       max_queued=int(params.get("max_queued", default.max_queued)),
                       keep_cache_idle_s=float(params.get("keep_cache_idle_s", default.keep_cache_idle_s)))
        except ValueError as exc:
            raise ValueError(f"engine parameters max_num_seqs, max_tokens_in_flight and max_queued must be "
                             f"integers, keep_cache_idle_s a number of seconds: {exc}") from None


@dataclass
class _Sequence:
    request: GenerationRequest
    sink: TokenSink
    sampler: Sampler
    detok: IncrementalDetokenizer
    stops: StopMatcher
    submitted: float
    budget: int  # tokens reserved against max_tokens_in_flight
    cache: KVCache | None = None
    last_token: int = -1
    generated: list[int] = field(default_factory=list)
    first_token_at: float = 0.0
    logprob_sum: float = 0.0
    reserved: bool = False  # budget counted in tokens_in_flight (admitted, not yet released)


@dataclass(frozen=True)
class EngineStats:
    active: int
    queued: int
    tokens_in_flight: int
    steps: int
    mean_batch: float


class GenerationEngine:
    """Owns one decoder and runs the batched decoding loop on a background thread."""

    def __init__(self, decoder: Decoder, tokenizer: Tokenizer, eos_id: int | Collection[int] | None,
                 limits: EngineLimits = EngineLimits()) -> None:
        self._decoder = decoder
        self._tokenizer = tokenizer
        # checkpoints end turns with several ids (a list in generation_config.json)
        self._eos_ids = frozenset(() if eos_id is None else (eos_id,) if isinstance(eos_id, int) else eos_id)
        self.limits = limits
        self._queue: collections.deque[_Sequence] = collections.deque()
        self._active: list[_Sequence] = []
        self._reserved = 0
        self._steps = 0
        self._batched_rows = 0
        self._wake = threading.Condition()
        self._next_queue_sweep = 0.0
        self._running = False
        self._thread: threading.Thread | None = None

    # -- public -----------------------------------------------------------------------
    def start(self) -> None:
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="generation-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop; requests still queued or running get on_error (nobody waits forever)."""
        with self._wake:
            self._running = False
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                return  # a step is stuck in the decoder: leave its sequences to it
        with self._wake:
            left = [*self._active, *self._queue]
            self._queue.clear()
        for seq in left:
            self._fail(seq, GenerationFailed("the model stopped (unloading) before this request finished"))

    def submit(self, request: GenerationRequest, sink: TokenSink) -> None:
        sampling = request.sampling
        if sampling.min_tokens and self._eos_ids and not request.ignore_eos:
            sampling = dataclasses.replace(sampling, eos_ids=tuple(sorted(self._eos_ids)))
        seq = _Sequence(
            request=request, sink=sink, sampler=Sampler(sampling),
            detok=IncrementalDetokenizer(self._tokenizer.decode), stops=StopMatcher(request.stop),
            submitted=time.perf_counter(),
            budget=len(request.prompt_ids) + request.max_new_tokens,
        )
        with self._wake:
            queued = len(self._queue)
            if queued < self.limits.max_queued:
                self._queue.append(seq)
                self._wake.notify()
                return
        sink.on_error(Overloaded(f"overloaded, retry: {queued} requests already wait for this model "
                                 f"(max_queued {self.limits.max_queued})"))

    def stats(self) -> EngineStats:
        with self._wake:
            return EngineStats(
                active=len(self._active), queued=len(self._queue), tokens_in_flight=self._reserved,
                steps=self._steps, mean_batch=self._batched_rows / self._steps if self._steps else 0.0,
            )

    def run_until_idle(self) -> None:
        """Drive the loop on the calling thread until no work is left (tests, benchmarks)."""
        while self._admit_and_step():
            pass

    # -- loop -------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._wake:
                holding = True  # the decoder may hold a cache's memory since the last work
                while self._running and not self._queue and not self._active:
                    woken = self._wake.wait(timeout=self.limits.keep_cache_idle_s if holding else None)
                    if not woken and holding:
                        self._trim()
                        holding = False
                if not self._running:
                    break
            try:
                self._admit_and_step()
            except Exception:
                LOGGER.exception("decoding step failed")

    def _admit_and_step(self) -> bool:
        self._drop_cancelled()
        admitted = self._admit_live()
        if admitted:
            self._make_room()
        for group in prefill_groups(admitted, PREFILL_TOKENS):
            self._prefill_group(group)
        if self._active:
            self._step()
        with self._wake:
            return bool(self._queue or self._active)

    def _admit(self) -> list[_Sequence]:
        """Move queued requests into the active set while the limits allow."""
        capacity = self.limits.max_num_seqs if self.limits.batching else 1
        admitted = []
        with self._wake:
            while self._queue and len(self._active) < capacity:
                seq = self._queue[0]
                if self._active and self._reserved + seq.budget > self.limits.max_tokens_in_flight:
                    break  # wait for memory; an empty engine always takes the next request
                self._queue.popleft()
                self._reserved += seq.budget
                seq.reserved = True
                self._active.append(seq)  # counted as active from now on, prefilled below
                admitted.append(seq)
        return admitted

    def _admit_live(self) -> list[_Sequence]:
        """The admitted sequences whose callers are still there; the others finish unrun."""
        live = []
        for seq in self._admit():
            if _is_cancelled(seq):
                self._finish(seq, "cancelled")  # gone while it waited: never run it
            else:
                live.append(seq)
        return live

    def _make_room(self) -> None:
        """Have the decoder make room, at once, for every sequence the engine may run and the longest budget admitted.

        One allocation before a burst's prefills, where growing row by row and token by token
        would copy the cache into fresh memory several times.
        """
        reserve = getattr(self._decoder, "reserve", None)
        if reserve is None or not self._active:
            return
        rows = self.limits.max_num_seqs if self.limits.batching else 1
        try:
            reserve(max(rows, len(self._active)), max(seq.budget for seq in self._active))
        except Exception:  # only an optimisation: the decoder still grows as it needs
            LOGGER.exception("could not reserve the KV cache ahead")

    def _trim(self) -> None:
        """Idle for keep_cache_idle_s: let the decoder give its cache's memory back."""
        trim = getattr(self._decoder, "trim", None)
        if trim is not None:
            try:
                trim()
            except Exception:  # memory kept is not an error anyone could act on
                LOGGER.exception("could not trim the KV cache")

    def _prefill_group(self, group: list[_Sequence]) -> None:
        prefill_batch = getattr(self._decoder, "prefill_batch", None)
        if len(group) == 1 or prefill_batch is None:
            for seq in group:
                self._prefill(seq)
            return
        try:
            logits, caches = prefill_batch([seq.request.prompt_ids for seq in group])
        except Exception:  # noqa: BLE001 - retried one by one, so only the failing requests see it
            LOGGER.warning("a prefill of %d prompts failed; retrying them one by one", len(group))
            for seq in group:
                self._prefill(seq)
            return
        for seq, cache in zip(group, caches, strict=True):
            seq.cache = cache
        self._choose(group, logits)

    def _prefill(self, seq: _Sequence) -> None:
        try:
            logits, seq.cache = self._decoder.prefill(seq.request.prompt_ids)
        except Exception as exc:  # noqa: BLE001 - reported to this request only
            self._fail(seq, exc)
            return
        self._choose([seq], logits[None, :])

    def _step(self) -> None:
        batch = list(self._active)
        if self._decode(batch) or len(batch) == 1:
            return
        # the batched step failed: run each sequence alone so only the failing ones see the error
        LOGGER.warning("a decoding step of %d sequences failed; retrying them one by one", len(batch))
        for seq in batch:
            self._decode([seq])

    def _decode(self, batch: list[_Sequence]) -> bool:
        """One decoding step for these sequences; False if the decoder raised."""
        try:
            logits, caches = self._decoder.decode_batch([(s.last_token, s.cache) for s in batch])
        except Exception as exc:  # noqa: BLE001 - the caller decides who sees it
            if len(batch) == 1:
                self._fail(batch[0], exc)
            return False
        self._steps += 1
        self._batched_rows += len(batch)
        for seq, cache in zip(batch, caches, strict=True):
            seq.cache = cache
        self._choose(batch, logits)
        return True

    def _choose(self, batch: list[_Sequence], logits: np.ndarray) -> None:
        """Each sequence's next token from its row of logits [batch, vocab], then every row's log-probability at once.

        The greedy rows' tokens come from one argmax, the others' from their samplers (penalties,
        sampling); one pass over the batch then takes the log-probabilities, where a pass per
        sampled row took them again (every request of a model with default penalties).
        """
        plain = [s.sampler.params.greedy and not s.sampler.params.adjusts_logits for s in batch]
        tokens = np.argmax(logits, axis=1) if any(plain) else np.zeros(len(batch), dtype=np.int64)
        chosen = []
        for i, seq in enumerate(batch):
            if not plain[i]:
                try:
                    tokens[i] = seq.sampler.choose(logits[i], seq.request.prompt_ids, seq.generated)
                except Exception as exc:  # noqa: BLE001 - e.g. non-finite logits: this request only
                    self._fail(seq, exc)
                    continue
            chosen.append(i)
        logprobs = token_logprobs(logits, tokens).tolist()
        for i in chosen:
            self._accept(batch[i], int(tokens[i]), logprobs[i])

    def _accept(self, seq: _Sequence, token: int, logprob: float = 0.0) -> None:
        now = time.perf_counter()
        if not seq.generated:
            seq.first_token_at = now
        if token in self._eos_ids and not seq.request.ignore_eos:
            self._finish(seq, "eos")
            return
        seq.generated.append(token)
        seq.logprob_sum += logprob
        seq.last_token = token
        piece, stopped = seq.stops.push(seq.detok.push(token))
        if seq.request.stream and piece:
            try:
                seq.sink.on_text(piece, len(seq.generated))
            except Exception as exc:  # noqa: BLE001 - a broken sender ends only its own request
                self._fail(seq, exc)
                return
        if stopped:
            self._finish(seq, "stop")
        elif len(seq.generated) >= seq.request.max_new_tokens:
            self._finish(seq, "length")

    def _drop_cancelled(self) -> None:
        """Finish requests whose caller has gone, freeing their slots (and their place in the queue)."""
        gone = [s for s in self._active if _is_cancelled(s)]
        now = time.perf_counter()
        if now >= self._next_queue_sweep:
            # asking a Triton request costs a round trip to the server: sweep the queue now and then,
            # it only keeps the queue length honest (admission checks each request anyway)
            self._next_queue_sweep = now + QUEUE_SWEEP_S
            with self._wake:
                waiting = list(self._queue)
            left = [s for s in waiting if _is_cancelled(s)]
            with self._wake:
                for seq in left:
                    self._queue.remove(seq)
            gone += left
        for seq in gone:
            self._finish(seq, "cancelled")

    def _release(self, seq: _Sequence) -> None:
        if seq.cache is not None:
            try:
                self._decoder.release(seq.cache)
            except Exception:
                LOGGER.exception("could not release a sequence's cache")
        seq.cache = None
        with self._wake:
            if seq in self._active:
                self._active.remove(seq)
            if seq.reserved:
                self._reserved -= seq.budget
                seq.reserved = False

    def _finish(self, seq: _Sequence, reason: str) -> None:
        self._release(seq)
        now = time.perf_counter()
        first = seq.first_token_at or now
        try:
            tail, stopped = seq.stops.push(seq.detok.flush())
            tail += seq.stops.flush()
            if seq.request.stream and tail:
                seq.sink.on_text(tail, len(seq.generated))
            seq.sink.on_finish(GenerationResult(
                text=seq.stops.text, tokens=len(seq.generated), finish_reason="stop" if stopped else reason,
                time_to_first_token_s=first - seq.submitted, duration_s=now - seq.submitted,
                token_ids=tuple(seq.generated),
                mean_logprob=seq.logprob_sum / len(seq.generated) if seq.generated else None,
            ))
        except Exception:
            LOGGER.exception("could not deliver the result of a request")

    def _fail(self, seq: _Sequence, exc: Exception) -> None:
        LOGGER.error("generation failed: %s", exc)
        self._release(seq)
        try:
            seq.sink.on_error(exc)
        except Exception:
            LOGGER.exception("could not deliver the error of a request")


def _is_cancelled(seq: _Sequence) -> bool:
    try:
        return bool(seq.sink.cancelled())
    except Exception:  # noqa: BLE001 - a sink that cannot answer has lost its caller
        return True


def prefill_groups(seqs: Sequence[_Sequence], max_tokens: int) -> list[list[_Sequence]]:
    """Admission order cut into prefill passes of at most max_tokens padded tokens (rows x longest prompt)."""
    groups: list[list[_Sequence]] = []
    longest = 0
    for seq in seqs:
        n = len(seq.request.prompt_ids)
        if groups and (len(groups[-1]) + 1) * max(longest, n) <= max_tokens:
            groups[-1].append(seq)
            longest = max(longest, n)
        else:
            groups.append([seq])
            longest = n
    return groups


def token_logprobs(logits: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Log p(token) of each row's token [batch], under each row's softmax at temperature 1.

    The pass over the vocabulary stays in float32 and in one buffer (the sum and log in
    float64): with float64 copies, 16 rows of a 32k vocabulary took 2.6x as long (bench_sampling).
    """
    rows = np.asarray(logits, dtype=np.float32)
    shifted = rows - rows.max(axis=1, keepdims=True)
    picked = shifted[np.arange(len(tokens)), tokens].astype(np.float64)
    norm = np.log(np.exp(shifted, out=shifted).sum(axis=1, dtype=np.float64))
    return picked - norm


def greedy_reference(decoder: Decoder, prompt_ids: Sequence[int], max_new_tokens: int) -> list[int]:
    """Unbatched greedy decoding, one sequence alone: the reference batching must equal."""
    logits, cache = decoder.prefill(prompt_ids)
    out = [int(np.argmax(logits))]
    while len(out) < max_new_tokens:
        step_logits, caches = decoder.decode_batch([(out[-1], cache)])
        cache = caches[0]
        out.append(int(np.argmax(step_logits[0])))
    decoder.release(cache)
    return out
