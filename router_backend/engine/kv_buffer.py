"""A KV cache written in place: one preallocated buffer per layer, bound to the graph's past and present.

    decoder = InPlaceDecoder(session)          # a graph exported with GroupQueryAttention
    logits, slot = decoder.prefill([464, 3290])
    logits, slots = decoder.decode_batch([(token, slot)])
    decoder.release(slot)

Each sequence owns one row of every layer's buffer [rows, kv_heads, capacity, head_dim].
The graph's GroupQueryAttention writes a step's keys and values at the row's own length,
and onnxruntime I/O binding hands it the same memory as `past` and as `present`, so a
decoding step copies no cache. Rows stay packed (a leaving sequence's row is refilled
from the last one), so any batch of live sequences is one contiguous slice. The buffer
grows by doubling, in rows or in length, so a sequence's cache is copied O(log n) times
in its life, not once per step. The engine reserves the room its admitted sequences may
use (reserve) before it prefills them, so a burst grows the buffer once rather than
row by row and token by token; pages are backed only as they are written, so rows that
stay empty cost address space, not memory. The buffer outlives the last sequence until
the engine trims it after a quiet spell (EngineLimits.keep_cache_idle_s): a buffer freed
at every lull is written into fresh memory at every burst, and page faults made that
the slowest part of a burst (docs/families.md).

A decoding step reuses the previous step's I/O binding while the batch's rows and the
buffer stay the same (only the four small inputs are rebound) and writes its logits
into a preallocated array. A graph that takes `logit_positions` computes logits for the
last position only, so a long prompt does not run the output projection at every one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LOGGER = logging.getLogger(__name__)
MIN_CAPACITY = 64  # tokens per row of a fresh buffer


@dataclass(eq=False)
class Slot:
    """One sequence's place in the buffer: its row and how many tokens it holds."""

    row: int
    length: int
    live: bool = True


def is_in_place_graph(session) -> bool:
    """True for a graph exported with GroupQueryAttention (it takes seqlens_k)."""
    return any(i.name == "seqlens_k" for i in session.get_inputs())


class InPlaceDecoder:
    """Runs a GroupQueryAttention graph over preallocated KV buffers, with I/O binding."""

    def __init__(self, session, context_length: int | None = None) -> None:
        self._session = session
        inputs = {i.name: i for i in session.get_inputs()}
        self.past_names = tuple(n for n in inputs if n.startswith("past_key_values."))
        self.present_names = tuple(o.name for o in session.get_outputs() if o.name.startswith("present."))
        shape = inputs[self.past_names[0]].shape
        self.kv_heads, self.head_dim = int(shape[1]), int(shape[3])
        self.kv_dtype = np.float16 if inputs[self.past_names[0]].type == "tensor(float16)" else np.float32
        self.providers = session.get_providers()
        self.context_length = context_length
        self._buffers: list[np.ndarray] = []
        self._slots: list[Slot] = []  # index = row
        self._last_only = "logit_positions" in inputs  # graphs exported before it computed every position
        logits = session.get_outputs()[0]
        self._vocab = logits.shape[-1] if isinstance(logits.shape[-1], int) else None
        self._logits_dtype = np.float16 if logits.type == "tensor(float16)" else np.float32
        self._generation = 0  # bumped whenever the buffers are replaced: a kept binding points at the old ones
        self._step: tuple[tuple, object, np.ndarray | None] | None = None  # (key, binding, logits) of the last step

    # -- buffer ---------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self._buffers[0].shape[2] if self._buffers else 0

    def reserve(self, rows: int, length: int) -> None:
        """Make the buffer hold `rows` rows of `length` tokens, doubling what is short (one allocation)."""
        have_rows = self._buffers[0].shape[0] if self._buffers else 0
        if rows <= have_rows and length <= self.capacity:
            return
        new_rows = max(rows, 2 * have_rows, 1) if rows > have_rows else have_rows
        new_length = max(length, 2 * self.capacity, MIN_CAPACITY) if length > self.capacity else self.capacity
        if self.context_length:
            new_length = max(length, min(new_length, self.context_length))
        shape = (new_rows, self.kv_heads, new_length, self.head_dim)
        # GroupQueryAttention reads only each row's first seqlens_k + 1 entries: no need to zero
        fresh = [np.empty(shape, self.kv_dtype) for _ in self.past_names]
        used = len(self._slots)
        longest = max((s.length for s in self._slots), default=0)
        for old, new in zip(self._buffers, fresh, strict=False):
            new[:used, :, :longest] = old[:used, :, :longest]
        self._buffers = fresh
        self._generation += 1

    def trim(self) -> None:
        """Give the buffer's memory back if no sequence holds a row (the engine calls this when idle)."""
        if self._buffers and not self._slots:
            self._buffers = []
            self._generation += 1
            self._step = None

    def release(self, cache: object) -> None:
        """Give the sequence's row back; the last row moves into it so rows stay packed."""
        if not isinstance(cache, Slot) or not cache.live:
            return
        cache.live = False
        last = self._slots.pop()
        if last is not cache:
            n = last.length
            for buffer in self._buffers:
                buffer[cache.row, :, :n] = buffer[last.row, :, :n]
            last.row = cache.row
            self._slots[cache.row] = last

    def fork(self, slot: Slot) -> Slot:
        """A new sequence whose cache is a copy of `slot`'s (one row copied, no forward pass)."""
        if not slot.live:
            raise ValueError("fork got a released sequence")
        self.reserve(len(self._slots) + 1, slot.length)
        twin = Slot(row=len(self._slots), length=slot.length)
        for buffer in self._buffers:
            buffer[twin.row, :, :slot.length] = buffer[slot.row, :, :slot.length]
        self._slots.append(twin)
        return twin

    # -- steps ----------------------------------------------------------------------
    def _bind_buffers(self, binding, batch: int, first_row: int) -> None:
        shape = (batch, self.kv_heads, self.capacity, self.head_dim)
        for past, present, buffer in zip(self.past_names, self.present_names, self._buffers, strict=True):
            rows = buffer[first_row:first_row + batch]  # contiguous: rows are the leading axis
            pointer = rows.ctypes.data
            binding.bind_input(past, "cpu", 0, self.kv_dtype, shape, pointer)
            binding.bind_output(present, "cpu", 0, self.kv_dtype, shape, pointer)  # in place

    def _binding(self, batch: int, first_row: int, length: int):
        """The step's binding and logits array: the last step's while rows and buffers are unchanged."""
        key = (batch, first_row, length, self._generation)
        if self._step is not None and self._step[0] == key:
            return self._step[1], self._step[2]
        binding = self._session.io_binding()
        logits = None
        if length == 1 and self._vocab is not None:  # a decoding step: the logits' shape is known
            logits = np.empty((batch, 1, self._vocab), self._logits_dtype)
            binding.bind_output("logits", "cpu", 0, logits.dtype, logits.shape, logits.ctypes.data)
        else:
            binding.bind_output("logits", "cpu")  # first: get_outputs() follows the binding order
        self._bind_buffers(binding, batch, first_row)
        if length == 1:
            self._step = (key, binding, logits)
        return binding, logits

    def _run(self, ids: np.ndarray, positions: np.ndarray, seqlens: np.ndarray, first_row: int,
             keep: np.ndarray | None = None) -> np.ndarray:
        """One pass over rows first_row.. of the buffers; keep: the positions given logits (default: the last)."""
        batch, length = ids.shape
        binding, logits = self._binding(batch, first_row, length)
        total = np.asarray([int(seqlens.max()) + 1], np.int32)
        feeds = [("input_ids", ids), ("position_ids", positions), ("seqlens_k", seqlens),
                 ("total_sequence_length", total)]
        if self._last_only:
            feeds.append(("logit_positions", np.asarray([length - 1], np.int64) if keep is None else keep))
        for name, array in feeds:
            binding.bind_cpu_input(name, array)
        self._session.run_with_iobinding(binding)
        return logits if logits is not None else binding.get_outputs()[0].numpy()

    def prefill(self, prompt_ids: Sequence[int]) -> tuple[np.ndarray, Slot]:
        logits, slots = self.prefill_batch([prompt_ids])
        return logits[0], slots[0]

    def prefill_batch(self, prompts: Sequence[Sequence[int]]) -> tuple[np.ndarray, list[Slot]]:
        """Prefill several prompts in one pass: each one's last-position logits [prompts, vocab], and their slots.

        The prompts are right-padded to the longest. GroupQueryAttention reads each row's
        own length from seqlens_k (rotary positions too), so a row's logits equal its
        prefill alone; what the padding writes past a row's length is overwritten by its
        next token and never read.
        """
        lengths = [len(p) for p in prompts]
        if not prompts or min(lengths) < 1:
            raise ValueError("prefill_batch needs at least one prompt, each of at least one token")
        longest = max(lengths)
        self.reserve(len(self._slots) + len(prompts), longest)
        slots = [Slot(row=len(self._slots) + i, length=0) for i in range(len(prompts))]
        self._slots.extend(slots)
        ids = np.zeros((len(prompts), longest), np.int64)
        for row, prompt in enumerate(prompts):
            ids[row, :len(prompt)] = prompt
        last = np.asarray(lengths, np.int64) - 1
        keep = np.unique(last)
        positions = np.broadcast_to(np.arange(longest, dtype=np.int64), ids.shape).copy()
        try:
            logits = self._run(ids, positions, last.astype(np.int32), slots[0].row, keep)
        except Exception:
            for slot in reversed(slots):  # the last row first: no row moves
                self.release(slot)
            raise
        for slot, n in zip(slots, lengths, strict=True):
            slot.length = n
        # the kept positions' logits (every position's, for a graph without logit_positions)
        column = np.searchsorted(keep, last) if self._last_only else last
        # fancy indexing copies, in float32: a one-token prompt used the kept logits array
        return logits[np.arange(len(prompts)), column].astype(np.float32), slots

    def decode_batch(self, steps: Sequence[tuple[int, Slot]]) -> tuple[np.ndarray, list[Slot]]:
        slots = [slot for _, slot in steps]
        if any(not s.live for s in slots):
            raise ValueError("decode_batch got a released sequence")
        if len({id(s) for s in slots}) != len(slots):
            raise ValueError("decode_batch got one sequence twice")
        self.reserve(len(self._slots), max(s.length for s in slots) + 1)
        order = sorted(range(len(slots)), key=lambda i: slots[i].row)
        rows = [slots[i].row for i in order]
        if rows != list(range(rows[0], rows[0] + len(rows))):
            return self._decode_apart(steps)
        ids = np.asarray([[steps[i][0]] for i in order], np.int64)
        lengths = np.asarray([slots[i].length for i in order], np.int64)
        logits = self._run(ids, lengths[:, None], lengths.astype(np.int32), rows[0])
        for s in slots:
            s.length += 1
        out = np.empty((len(slots), logits.shape[-1]), np.float32)
        out[order] = logits[:, -1, :]
        return out, slots

    def _decode_apart(self, steps: Sequence[tuple[int, Slot]]) -> tuple[np.ndarray, list[Slot]]:
        """Sequences whose rows are not one slice (a retry of some of a batch): one step each."""
        rows = [self.decode_batch([step])[0][0] for step in steps]
        return np.stack(rows), [slot for _, slot in steps]
