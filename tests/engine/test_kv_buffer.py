"""The in-place KV buffer: exact tokens, no per-step copy or regrowth, packed rows.

    .venv/bin/pytest -q tests/engine/test_kv_buffer.py

A tiny random llama (grouped-query attention) and a tiny gpt2 are exported in both graph
layouts. The reference is independent of any cache: each next token is the argmax of a
fresh prefill of the whole sequence so far.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pointsman.engine.decoder import OnnxDecoder, load_decoder
from pointsman.engine.kv_buffer import MIN_CAPACITY, InPlaceDecoder
from pointsman.export.random_checkpoints import build_checkpoint, family_tokenizer

PROMPTS = [[5, 6, 7, 8, 9, 10, 11], [20, 21, 22], [30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40], [50]]


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def graphs(request, tmp_path_factory) -> dict[str, Path]:
    from pointsman.export.onnx_export import export_decoder

    root = tmp_path_factory.mktemp(request.param)
    tokenizer = family_tokenizer(root / "tokenizer")
    checkpoint = build_checkpoint(request.param, tokenizer, root / "checkpoint", context=256)
    return {layout: export_decoder(checkpoint, root / layout, kv_cache=layout).onnx_path
            for layout in ("inplace", "concat")}


def no_cache_greedy(path: Path, prompt: list[int], tokens: int) -> list[int]:
    """Greedy tokens with no cache at all: every step prefills the whole sequence afresh."""
    decoder = load_decoder(str(path), threads=1, providers="cpu")
    out: list[int] = []
    for _ in range(tokens):
        logits, cache = decoder.prefill(prompt + out)
        decoder.release(cache)
        out.append(int(np.argmax(logits)))
    return out


def batched_greedy(decoder, prompts: list[list[int]], tokens: int, leave: dict[int, int]) -> list[list[int]]:
    """All prompts decode together; sequence i leaves after leave[i] tokens (its cache released)."""
    caches, outs = [], []
    for prompt in prompts:
        logits, cache = decoder.prefill(prompt)
        caches.append(cache)
        outs.append([int(np.argmax(logits))])
    live = list(range(len(prompts)))
    while live:
        for i in [i for i in live if len(outs[i]) >= leave.get(i, tokens)]:
            decoder.release(caches[i])
            live.remove(i)
        if not live:
            break
        logits, new = decoder.decode_batch([(outs[i][-1], caches[i]) for i in live])
        for i, row, cache in zip(live, logits, new, strict=True):
            outs[i].append(int(np.argmax(row)))
            caches[i] = cache
    return outs


def test_load_decoder_picks_the_implementation_from_the_graph(graphs) -> None:
    assert isinstance(load_decoder(str(graphs["inplace"]), providers="cpu"), InPlaceDecoder)
    assert isinstance(load_decoder(str(graphs["concat"]), providers="cpu"), OnnxDecoder)
    with pytest.raises(ValueError, match="load_decoder"):
        OnnxDecoder.from_file(str(graphs["inplace"]), providers="cpu")


def test_batched_in_place_decoding_with_rows_leaving_equals_decoding_without_a_cache(graphs) -> None:
    # 90 new tokens after an 11-token prompt: the buffer doubles from 64 to 128 mid-flight
    tokens, leave = 90, {1: 20, 3: 40}  # rows leave from the middle: the last row moves into theirs
    decoder = load_decoder(str(graphs["inplace"]), threads=1, providers="cpu")
    got = batched_greedy(decoder, PROMPTS, tokens, leave)
    for i, prompt in enumerate(PROMPTS):
        assert got[i] == no_cache_greedy(graphs["inplace"], prompt, leave.get(i, tokens)), f"prompt {i}"
    assert decoder.capacity > 0, "the buffer outlives the last sequence, for the next burst"
    decoder.trim()
    assert decoder.capacity == 0, "trim gives the buffer back once every sequence has left"


def test_the_concat_graph_gives_the_same_tokens(graphs) -> None:
    tokens = 40
    inplace = batched_greedy(load_decoder(str(graphs["inplace"]), providers="cpu"), PROMPTS, tokens, {2: 10})
    concat = batched_greedy(load_decoder(str(graphs["concat"]), providers="cpu"), PROMPTS, tokens, {2: 10})
    assert inplace == concat


def test_a_decoding_step_writes_into_the_bound_buffer_and_neither_copies_nor_regrows_it(graphs) -> None:
    decoder = load_decoder(str(graphs["inplace"]), threads=1, providers="cpu")
    (_, short), (logits, long) = decoder.prefill([20, 21, 22]), decoder.prefill(PROMPTS[2])
    buffers = list(decoder._buffers)
    before = [b.copy() for b in buffers]
    steps = [(1, short), (int(np.argmax(logits)), long)]
    for _ in range(5):
        _, caches = decoder.decode_batch(steps)
        steps = [(1, c) for c in caches]
    assert all(a is b for a, b in zip(decoder._buffers, buffers, strict=True)), "no new buffer while it fits"
    assert decoder.capacity == MIN_CAPACITY
    for old, new in zip(before, buffers, strict=True):
        # the prompts' entries stay where they were; the five steps' entries were written after them
        np.testing.assert_array_equal(new[0, :, :3], old[0, :, :3])
        np.testing.assert_array_equal(new[1, :, :11], old[1, :, :11])
        assert not np.array_equal(new[0, :, 3:8], old[0, :, 3:8])
        assert not np.array_equal(new[1, :, 11:16], old[1, :, 11:16])
    assert (short.length, long.length) == (8, 16)


def test_a_released_sequence_cannot_decode(graphs) -> None:
    decoder = load_decoder(str(graphs["inplace"]), providers="cpu")
    logits, cache = decoder.prefill([5, 6])
    decoder.release(cache)
    with pytest.raises(ValueError, match="released"):
        decoder.decode_batch([(int(np.argmax(logits)), cache)])


def test_a_forked_sequence_decodes_as_the_original_does(graphs) -> None:
    decoder = load_decoder(str(graphs["inplace"]), threads=1, providers="cpu")
    logits, original = decoder.prefill(PROMPTS[0])
    twin = decoder.fork(original)
    first = int(np.argmax(logits))
    steps = [(first, original), (first, twin)]
    outs: list[list[int]] = [[first], [first]]
    for _ in range(10):
        rows, caches = decoder.decode_batch(steps)
        steps = [(int(np.argmax(r)), c) for r, c in zip(rows, caches, strict=True)]
        for out, (token, _) in zip(outs, steps, strict=True):
            out.append(token)
    assert outs[0] == outs[1] == no_cache_greedy(graphs["inplace"], PROMPTS[0], 11)


def test_decoding_steps_reuse_one_binding_until_the_batch_changes(graphs) -> None:
    decoder = load_decoder(str(graphs["inplace"]), threads=1, providers="cpu")
    (_, first), (_, second) = decoder.prefill(PROMPTS[0]), decoder.prefill(PROMPTS[1])
    decoder.decode_batch([(1, first), (1, second)])
    binding = decoder._step[1]
    decoder.decode_batch([(1, first), (1, second)])
    assert decoder._step[1] is binding, "same rows, same buffer: the binding is kept"

    decoder.release(first)  # second moves into row 0: a batch of one
    decoder.decode_batch([(1, second)])
    assert decoder._step[1] is not binding


def test_prefill_logits_are_the_last_position_of_a_full_run(graphs) -> None:
    import onnxruntime as ort

    from pointsman.export.onnx_export import prompt_feeds

    session = ort.InferenceSession(str(graphs["inplace"]), providers=["CPUExecutionProvider"])
    ids = np.asarray([PROMPTS[2]], np.int64)
    every = session.run(["logits"], prompt_feeds(session, ids))[0]
    logits, _ = load_decoder(str(graphs["inplace"]), threads=1, providers="cpu").prefill(PROMPTS[2])

    assert every.shape[1] == len(PROMPTS[2])
    np.testing.assert_allclose(logits, every[0, -1], atol=1e-5)


def test_prompts_prefilled_in_one_padded_pass_decode_as_each_alone(graphs) -> None:
    decoder = load_decoder(str(graphs["inplace"]), threads=1, providers="cpu")
    logits, caches = decoder.prefill_batch(PROMPTS)  # lengths 7, 3, 11 and 1: right-padded to 11
    for i, prompt in enumerate(PROMPTS):
        alone, cache = load_decoder(str(graphs["inplace"]), threads=1, providers="cpu").prefill(prompt)
        np.testing.assert_allclose(logits[i], alone, atol=1e-5, err_msg=f"prompt {i}")
    outs = [[int(np.argmax(row))] for row in logits]
    for _ in range(11):
        rows, caches = decoder.decode_batch([(out[-1], c) for out, c in zip(outs, caches, strict=True)])
        for out, row in zip(outs, rows, strict=True):
            out.append(int(np.argmax(row)))
    for i, prompt in enumerate(PROMPTS):
        assert outs[i] == no_cache_greedy(graphs["inplace"], prompt, 12), f"prompt {i}"
    assert [c.length for c in caches] == [len(p) + 11 for p in PROMPTS]


def test_room_reserved_ahead_is_used_without_a_new_buffer_and_trim_spares_a_held_row(graphs) -> None:
    decoder = load_decoder(str(graphs["inplace"]), threads=1, providers="cpu")
    decoder.reserve(4, 100)
    buffers = list(decoder._buffers)
    assert (buffers[0].shape[0], decoder.capacity) == (4, 100)
    got = batched_greedy(decoder, PROMPTS, 60, {0: 30})  # four rows, at most 11 + 60 tokens: it fits
    assert all(a is b for a, b in zip(decoder._buffers, buffers, strict=True)), "the reserved buffer is used"
    assert got[1] == no_cache_greedy(graphs["inplace"], PROMPTS[1], 60)
    _, held = decoder.prefill([5, 6])
    decoder.trim()
    assert decoder._buffers and decoder._buffers[0] is buffers[0], "a row is held: nothing is trimmed"
    decoder.release(held)
    decoder.trim()
    assert decoder.capacity == 0
