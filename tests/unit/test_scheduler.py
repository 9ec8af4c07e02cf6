"""The in-flight batching engine driven over the shared fake decoder (no model files)."""

from __future__ import annotations

import threading

import pytest

from pointsman.engine import scheduler
from pointsman.engine.sampling import SamplingParams
from pointsman.engine.scheduler import GenerationRequest, greedy_reference


def request(tokenizer, text: str, max_new_tokens: int, **options) -> GenerationRequest:
    return GenerationRequest(prompt_ids=tuple(tokenizer.encode(text)), max_new_tokens=max_new_tokens, **options)


def expected_text(tokenizer, decoder, text: str, max_new_tokens: int) -> str:
    return tokenizer.decode(greedy_reference(decoder, tokenizer.encode(text), max_new_tokens))


def test_stops_at_eos(make_engine, make_sink, fake_tokenizer) -> None:
    engine, _ = make_engine(eos_at_length=8)
    sink = make_sink()
    engine.submit(request(fake_tokenizer, "abc", 20), sink)
    engine.run_until_idle()
    assert (sink.result.finish_reason, sink.result.tokens) == ("eos", 5)  # histories of length 3..7


@pytest.mark.parametrize("max_new_tokens", [1, 2, 7, 30])
def test_stops_at_max_tokens(make_engine, make_sink, fake_tokenizer, max_new_tokens: int) -> None:
    engine, _ = make_engine()
    sink = make_sink()
    engine.submit(request(fake_tokenizer, "hello", max_new_tokens), sink)
    engine.run_until_idle()
    assert (sink.result.finish_reason, sink.result.tokens) == ("length", max_new_tokens)
    assert len(sink.result.text) == max_new_tokens


def test_ignore_eos_generates_through_eos_up_to_max_tokens(make_engine, make_sink, fake_tokenizer) -> None:
    engine, _ = make_engine(eos_at_length=5)
    sink = make_sink()
    engine.submit(request(fake_tokenizer, "abc", 6, ignore_eos=True), sink)
    engine.run_until_idle()
    assert (sink.result.finish_reason, sink.result.tokens) == ("length", 6)
    assert len(sink.result.text) == 2  # the four EOS tokens decode to nothing


@pytest.mark.parametrize(("text", "max_new_tokens", "eos_at_length"), [
    ("a", 1, None), ("hello world", 12, None), ("abc", 20, 9), ("xyz", 4, 3),
])
def test_streamed_pieces_concatenate_to_the_final_text(make_engine, make_sink, fake_tokenizer, text: str,
                                                       max_new_tokens: int, eos_at_length: int | None) -> None:
    engine, _ = make_engine(eos_at_length=eos_at_length)
    sink = make_sink()
    engine.submit(request(fake_tokenizer, text, max_new_tokens, stream=True), sink)
    engine.run_until_idle()
    assert "".join(sink.pieces) == sink.result.text
    assert len(sink.pieces) == sink.result.tokens
    assert sink.piece_tokens == list(range(1, sink.result.tokens + 1))  # one token per piece here


def test_a_held_back_piece_carries_the_count_of_the_step_that_released_it(make_engine, make_sink,
                                                                         fake_tokenizer) -> None:
    engine, _ = make_engine()
    plain = make_sink()
    engine.submit(request(fake_tokenizer, "abc", 30, stream=True), plain)
    engine.run_until_idle()
    # a stop sequence that starts like the text at 10 but does not match: the matcher holds
    # its first character back until the next one rules the match out
    near_miss = plain.result.text[10] + "\x00"
    sink = make_sink()
    engine.submit(GenerationRequest(tuple(fake_tokenizer.encode("abc")), 30, stream=True, stop=(near_miss,)), sink)
    engine.run_until_idle()

    assert "".join(sink.pieces) == plain.result.text and sink.result.tokens == 30
    sent = [len("".join(sink.pieces[: i + 1])) for i in range(len(sink.pieces))]  # one character per token
    assert sink.piece_tokens == sent  # each piece counts the tokens generated when it went out
    assert any(len(piece) > 1 for piece in sink.pieces)  # and one of them held two


def test_non_streaming_request_gets_only_the_final_result(make_engine, make_sink, fake_tokenizer) -> None:
    engine, _ = make_engine()
    sink = make_sink()
    engine.submit(request(fake_tokenizer, "abc", 5), sink)
    engine.run_until_idle()
    assert sink.pieces == [] and len(sink.result.text) == 5


PROMPTS = [("a", 9), ("hello world", 3), ("the cat sat on the mat", 14), ("xy", 1), ("lorem ipsum", 7), ("q", 11)]


@pytest.mark.parametrize("max_num_seqs", [1, 3, 16])
def test_batched_output_equals_greedy_reference_per_sequence(make_engine, make_sink, fake_tokenizer,
                                                             fake_decoder, max_num_seqs: int) -> None:
    engine, decoder = make_engine(max_num_seqs=max_num_seqs)
    sinks = [make_sink() for _ in PROMPTS]
    for (text, n), sink in zip(PROMPTS, sinks, strict=True):
        engine.submit(request(fake_tokenizer, text, n), sink)
    engine.run_until_idle()
    for (text, n), sink in zip(PROMPTS, sinks, strict=True):
        assert sink.result.text == expected_text(fake_tokenizer, fake_decoder, text, n)
    decoding = sum(n > 1 for _, n in PROMPTS)  # a one-token request ends at prefill
    assert max(decoder.batch_sizes) == min(max_num_seqs, decoding)


def test_new_request_joins_mid_flight_and_a_finished_one_leaves_at_once(make_engine, make_sink,
                                                                         fake_tokenizer) -> None:
    engine, decoder = make_engine()
    late = make_sink()

    def join_after_two_pieces(sink) -> None:
        if len(sink.pieces) == 2:
            engine.submit(request(fake_tokenizer, "late", 2), late)

    first = make_sink(on_piece=join_after_two_pieces)
    engine.submit(request(fake_tokenizer, "first", 6, stream=True), first)
    engine.run_until_idle()
    # first alone, then both for the one step late needs, then first alone again
    assert decoder.batch_sizes == [1, 2, 1, 1, 1]
    assert (first.result.tokens, late.result.tokens) == (6, 2)


def test_cancellation_frees_the_slot_for_the_next_request(make_engine, make_sink, fake_tokenizer) -> None:
    engine, decoder = make_engine(max_num_seqs=1)
    cancelled, waiting = make_sink(cancel_after=2), make_sink()
    engine.submit(request(fake_tokenizer, "abc", 50, stream=True), cancelled)
    engine.submit(request(fake_tokenizer, "defg", 3), waiting)
    engine.run_until_idle()
    assert (cancelled.result.finish_reason, cancelled.result.tokens) == ("cancelled", 2)
    assert waiting.result.tokens == 3
    assert decoder.events == [("prefill", 3), ("decode", 1), ("prefill", 4), ("decode", 1), ("decode", 1)]
    assert engine.stats().tokens_in_flight == 0


def test_request_cancelled_while_queued_is_never_prefilled(make_engine, make_sink, fake_tokenizer) -> None:
    engine, decoder = make_engine(max_num_seqs=1)
    running, gone = make_sink(), make_sink()
    engine.submit(request(fake_tokenizer, "abc", 3), running)
    engine.submit(request(fake_tokenizer, "defg", 3), gone)
    gone.cancel()
    engine.run_until_idle()
    assert (gone.result.finish_reason, gone.result.tokens) == ("cancelled", 0)
    assert [e for e in decoder.events if e[0] == "prefill"] == [("prefill", 3)]
    assert engine.stats().tokens_in_flight == 0


@pytest.mark.parametrize(("limits", "admitted"), [
    ({"max_num_seqs": 2}, 2),
    ({"max_num_seqs": 3, "max_tokens_in_flight": 1000}, 3),
    ({"max_tokens_in_flight": 16}, 2),  # each request reserves 3 prompt + 5 new tokens
    ({"max_tokens_in_flight": 23}, 2),
    ({"max_tokens_in_flight": 24}, 3),
])
def test_limits_bound_the_active_set_and_the_rest_queue(make_engine, make_sink, fake_tokenizer,
                                                        limits: dict, admitted: int) -> None:
    engine, decoder = make_engine(**limits)
    seen = []
    sinks = [make_sink(on_piece=lambda _: seen.append(engine.stats()))] + [make_sink() for _ in range(4)]
    for sink in sinks:
        engine.submit(request(fake_tokenizer, "abc", 5, stream=True), sink)
    engine.run_until_idle()
    assert (seen[0].active, seen[0].queued) == (admitted, 5 - admitted)
    assert seen[0].tokens_in_flight == 8 * admitted
    assert max(decoder.batch_sizes) == admitted
    assert all(s.result.tokens == 5 for s in sinks)
    assert engine.stats().queued == engine.stats().active == engine.stats().tokens_in_flight == 0


def test_request_larger_than_the_token_budget_runs_alone(make_engine, make_sink, fake_tokenizer) -> None:
    engine, _ = make_engine(max_tokens_in_flight=4)
    sinks = [make_sink(), make_sink()]
    for sink in sinks:
        engine.submit(request(fake_tokenizer, "abc", 6), sink)
    engine.run_until_idle()
    assert [s.result.tokens for s in sinks] == [6, 6]


def test_prefill_error_reaches_only_the_failing_request(make_engine, make_sink, fake_tokenizer,
                                                         fake_decoder) -> None:
    engine, _ = make_engine()
    good, bad, other = make_sink(), make_sink(), make_sink()
    engine.submit(request(fake_tokenizer, "abc", 4), good)
    engine.submit(request(fake_tokenizer, "ab?", 4), bad)
    engine.submit(request(fake_tokenizer, "hello", 4), other)
    engine.run_until_idle()
    assert bad.results == [] and "poisoned" in str(bad.errors[0])
    assert good.result.text == expected_text(fake_tokenizer, fake_decoder, "abc", 4)
    assert other.result.text == expected_text(fake_tokenizer, fake_decoder, "hello", 4)


def test_decode_error_reaches_only_the_failing_request(make_engine, make_sink, fake_tokenizer,
                                                        fake_decoder) -> None:
    engine, _ = make_engine()
    good, bad, other = make_sink(), make_sink(), make_sink()
    engine.submit(request(fake_tokenizer, "abc", 6), good)
    engine.submit(request(fake_tokenizer, "ab!", 6), bad)
    engine.submit(request(fake_tokenizer, "hello", 6), other)
    engine.run_until_idle()
    assert bad.results == [] and len(bad.errors) == 1
    assert good.result.text == expected_text(fake_tokenizer, fake_decoder, "abc", 6)
    assert other.result.text == expected_text(fake_tokenizer, fake_decoder, "hello", 6)
    assert engine.stats().tokens_in_flight == 0


def test_every_prefilled_sequence_gives_its_cache_back_once(make_engine, make_sink, fake_tokenizer) -> None:
    """Finished, cancelled and failed sequences all release their cache (the in-place buffer's rows)."""
    engine, decoder = make_engine()
    done, eos, cancelled, failed, never = (make_sink(), make_sink(), make_sink(cancel_after=1), make_sink(),
                                           make_sink())
    engine.submit(request(fake_tokenizer, "abc", 4), done)
    engine.submit(request(fake_tokenizer, "hello", 4, stream=True), cancelled)
    engine.submit(request(fake_tokenizer, "ab!", 4), failed)  # poisoned: every decode step raises
    engine.submit(request(fake_tokenizer, "ab?", 4), never)  # poisoned: prefill raises, nothing to release
    engine.run_until_idle()
    decoder.eos_at_length = 4
    engine.submit(request(fake_tokenizer, "xyz", 9), eos)
    engine.run_until_idle()
    assert (done.result.finish_reason, cancelled.result.finish_reason, eos.result.finish_reason) == (
        "length", "cancelled", "eos")
    assert len(failed.errors) == len(never.errors) == 1
    assert len(decoder.released) == len(decoder.prefilled) == 4
    assert len({id(cache) for cache in decoder.released}) == 4


def test_failing_sink_affects_only_its_own_request(make_engine, make_sink, fake_tokenizer, fake_decoder) -> None:
    def explode(_) -> None:
        raise ConnectionError("client went away")

    engine, _ = make_engine()
    broken, good = make_sink(on_piece=explode), make_sink()
    engine.submit(request(fake_tokenizer, "abc", 6, stream=True), broken)
    engine.submit(request(fake_tokenizer, "hello", 6, stream=True), good)
    engine.run_until_idle()
    assert broken.results == [] and isinstance(broken.errors[0], ConnectionError)
    assert good.result.text == expected_text(fake_tokenizer, fake_decoder, "hello", 6)


def test_engine_thread_keeps_serving_after_errors(make_engine, make_sink, fake_tokenizer, fake_decoder) -> None:
    engine, _ = make_engine()
    engine.start()
    try:
        bad_prefill, bad_decode = make_sink(), make_sink()
        engine.submit(request(fake_tokenizer, "?", 3), bad_prefill)
        engine.submit(request(fake_tokenizer, "!", 3), bad_decode)
        assert bad_prefill.done.wait(5) and bad_decode.done.wait(5)
        good = make_sink()
        engine.submit(request(fake_tokenizer, "abc", 3), good)
        assert good.done.wait(5)
    finally:
        engine.stop()
    assert len(bad_prefill.errors) == len(bad_decode.errors) == 1
    assert good.result.text == expected_text(fake_tokenizer, fake_decoder, "abc", 3)


def test_engine_thread_serves_concurrent_submitters(make_engine, make_sink, fake_tokenizer, fake_decoder) -> None:
    engine, decoder = make_engine(max_num_seqs=4)
    sinks = [make_sink() for _ in PROMPTS]
    engine.start()
    try:
        threads = [threading.Thread(target=engine.submit, args=(request(fake_tokenizer, text, n), sink))
                   for (text, n), sink in zip(PROMPTS, sinks, strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(s.done.wait(5) for s in sinks)
    finally:
        engine.stop()
    for (text, n), sink in zip(PROMPTS, sinks, strict=True):
        assert sink.result.text == expected_text(fake_tokenizer, fake_decoder, text, n)
    assert max(decoder.batch_sizes) <= 4


def test_stop_fails_requests_still_waiting(make_engine, make_sink, fake_tokenizer) -> None:
    engine, _ = make_engine()
    sink = make_sink()
    engine.submit(request(fake_tokenizer, "abc", 3), sink)
    engine.stop()
    assert sink.results == [] and "stopped" in str(sink.errors[0])
    assert engine.stats().queued == 0


def test_batching_off_runs_one_request_at_a_time(make_engine, make_sink, fake_tokenizer, fake_decoder) -> None:
    engine, decoder = make_engine(batching=False)
    sinks = [make_sink() for _ in range(3)]
    for sink in sinks:
        engine.submit(request(fake_tokenizer, "abc", 4), sink)
    engine.run_until_idle()
    one_request = [("prefill", 3)] + [("decode", 1)] * 3
    assert decoder.events == one_request * 3
    assert all(s.result.text == expected_text(fake_tokenizer, fake_decoder, "abc", 4) for s in sinks)


@pytest.mark.parametrize("seed", [0, 7, 12345])
def test_sampled_request_gives_the_same_text_alone_or_in_a_batch(make_engine, make_sink, fake_tokenizer,
                                                                  seed: int) -> None:
    sampling = SamplingParams(temperature=1.2, top_k=10, top_p=0.9, seed=seed)
    texts = []
    for neighbours in (0, 3):
        engine, _ = make_engine()
        sink = make_sink()
        for i in range(neighbours):  # greedy and differently seeded neighbours share the batch
            engine.submit(request(fake_tokenizer, "xyz"[: i + 1], 9,
                                  sampling=SamplingParams(temperature=1.0, seed=i) if i else SamplingParams()),
                          make_sink())
        engine.submit(request(fake_tokenizer, "hello", 9, sampling=sampling), sink)
        engine.run_until_idle()
        texts.append(sink.result.text)
    assert texts[0] == texts[1]


def test_a_penalised_request_gives_the_same_result_alone_or_in_a_batch(make_engine, make_sink,
                                                                     fake_tokenizer) -> None:
    """The demo models' penalties, beside greedy and sampled neighbours: text and log-probability unchanged."""
    penalised = SamplingParams(repetition_penalty=1.2, presence_penalty=0.5, frequency_penalty=0.5)
    plain, _ = make_engine()
    unpenalised = make_sink()
    plain.submit(request(fake_tokenizer, "hello", 12), unpenalised)
    plain.run_until_idle()
    results = []
    for neighbours in (0, 3):
        engine, _ = make_engine()
        sink = make_sink()
        for i in range(neighbours):
            engine.submit(request(fake_tokenizer, "xyz"[: i + 1], 12,
                                  sampling=SamplingParams(temperature=1.0, seed=i) if i else SamplingParams()),
                          make_sink())
        engine.submit(request(fake_tokenizer, "hello", 12, sampling=penalised), sink)
        engine.run_until_idle()
        results.append((sink.result.text, sink.result.token_ids, sink.result.mean_logprob))
    assert results[0] == results[1]
    assert results[0][1] != unpenalised.result.token_ids  # the penalties changed the greedy choices


def test_stats_count_steps_and_mean_batch(make_engine, make_sink, fake_tokenizer) -> None:
    engine, _ = make_engine()
    for _ in range(4):
        engine.submit(request(fake_tokenizer, "abc", 3), make_sink())
    engine.run_until_idle()
    stats = engine.stats()
    assert (stats.steps, stats.mean_batch) == (2, 4.0)


def test_result_times_are_ordered(make_engine, make_sink, fake_tokenizer) -> None:
    engine, _ = make_engine()
    sink = make_sink()
    engine.submit(request(fake_tokenizer, "abc", 5), sink)
    engine.run_until_idle()
    assert 0 <= sink.result.time_to_first_token_s <= sink.result.duration_s


def test_request_cancelled_while_queued_leaves_the_queue(make_engine, make_sink, fake_tokenizer,
                                                         monkeypatch) -> None:
    monkeypatch.setattr(scheduler, "QUEUE_SWEEP_S", 0.0)  # sweep at every step
    engine, _ = make_engine(max_num_seqs=1)
    seen = []
    gone = make_sink()

    def cancel_then_look(sink) -> None:
        if len(sink.pieces) == 1:
            gone.cancel()
        seen.append(engine.stats().queued)

    engine.submit(request(fake_tokenizer, "abc", 5, stream=True), make_sink(on_piece=cancel_then_look))
    engine.submit(request(fake_tokenizer, "defg", 3), gone)
    engine.run_until_idle()
    assert seen[0] == 1 and seen[-1] == 0  # swept while the first request still ran
    assert gone.result.finish_reason == "cancelled"


def test_token_logprobs_are_the_log_softmax_of_the_chosen_tokens():
    import numpy as np

    from pointsman.engine.scheduler import token_logprobs

    logits = np.array([2.0, 1.0, 0.5, -1.0], dtype=np.float32)
    expected = np.log(np.exp(logits) / np.exp(logits).sum())
    for token in range(4):
        assert token_logprobs(logits[None, :], np.asarray([token]))[0] == pytest.approx(float(expected[token]),
                                                                                           abs=1e-6)


def test_token_logprobs_of_a_batch_equal_each_row_alone():
    import numpy as np

    from pointsman.engine.scheduler import token_logprobs

    logits = np.random.default_rng(3).standard_normal((5, 40)).astype(np.float32)
    tokens = np.array([0, 7, 39, 7, 12])
    alone = [token_logprobs(row[None, :], np.asarray([t]))[0] for row, t in zip(logits, tokens, strict=True)]
    assert token_logprobs(logits, tokens).tolist() == alone  # the same arithmetic, row by row


def test_requests_admitted_together_are_prefilled_in_one_pass(make_engine, make_sink, fake_tokenizer,
                                                              fake_decoder) -> None:
    engine, decoder = make_engine()
    texts = ["abc", "hello there", "x"]
    sinks = [make_sink() for _ in texts]
    for text, sink in zip(texts, sinks, strict=True):
        engine.submit(request(fake_tokenizer, text, 5), sink)
    engine.run_until_idle()
    assert decoder.events[0] == ("prefill_batch", 3)
    assert not [e for e in decoder.events if e[0] == "prefill"], "no prompt was prefilled alone"
    for text, sink in zip(texts, sinks, strict=True):
        assert sink.result.text == expected_text(fake_tokenizer, fake_decoder, text, 5)


def test_a_failed_batched_prefill_is_retried_one_prompt_at_a_time(make_engine, make_sink, fake_tokenizer) -> None:
    engine, decoder = make_engine()
    good, bad = make_sink(), make_sink()
    engine.submit(request(fake_tokenizer, "abc", 3), good)
    engine.submit(request(fake_tokenizer, "ab?", 3), bad)
    engine.run_until_idle()
    assert decoder.events[:3] == [("prefill_batch", 2), ("prefill", 3), ("prefill", 3)]
    assert good.result.tokens == 3 and "poisoned" in str(bad.errors[0])


@pytest.mark.parametrize(("lengths", "groups"), [
    ([10, 10, 30, 5], [[10, 10], [30], [5]]),  # 3 x 30 padded tokens would pass 40
    ([5, 5, 5, 5, 5, 5, 5, 5, 5], [[5] * 8, [5]]),
    ([50, 3], [[50], [3]]),  # a prompt longer than the pass goes alone
    ([3, 50], [[3], [50]]),
])
def test_prefill_passes_hold_at_most_their_padded_tokens(fake_tokenizer, lengths, groups) -> None:
    from pointsman.engine.scheduler import prefill_groups

    seqs = [scheduler._Sequence(request=GenerationRequest(prompt_ids=(1,) * n, max_new_tokens=1), sink=None,
                                sampler=None, detok=None, stops=None, submitted=0.0, budget=0) for n in lengths]
    got = prefill_groups(seqs, max_tokens=40)
    assert [[len(s.request.prompt_ids) for s in group] for group in got] == groups


def test_the_engine_reserves_room_for_a_burst_before_prefilling_it(make_engine, make_sink, fake_tokenizer) -> None:
    engine, decoder = make_engine(max_num_seqs=4)
    sinks = [make_sink() for _ in range(3)]
    for sink, (text, n) in zip(sinks, [("abc", 5), ("hello world", 9), ("x", 2)], strict=True):
        engine.submit(request(fake_tokenizer, text, n), sink)
    engine.run_until_idle()
    # every row the engine may run, and the longest budget admitted (prompt + max_new_tokens: 11 + 9)
    assert decoder.reservations[0] == (4, 20, 0)  # 0: before any prompt was prefilled
    assert all(s.result.finish_reason == "length" for s in sinks)


def test_a_batching_off_engine_reserves_one_row(make_engine, make_sink, fake_tokenizer) -> None:
    engine, decoder = make_engine(batching=False)
    engine.submit(request(fake_tokenizer, "abc", 4), make_sink())
    engine.run_until_idle()
    assert decoder.reservations == [(1, 7, 0)]


def test_an_idle_engine_keeps_its_cache_until_keep_cache_idle_s_then_trims_it(make_engine, make_sink,
                                                                             fake_tokenizer) -> None:
    engine, decoder = make_engine(keep_cache_idle_s=0.05)
    engine.start()
    try:
        sink = make_sink()
        engine.submit(request(fake_tokenizer, "abc", 3), sink)
        assert sink.done.wait(5)
        assert decoder.trimmed.wait(5), "the cache was never trimmed after the engine went idle"
    finally:
        engine.stop()


def test_an_engine_idle_for_less_than_keep_cache_idle_s_keeps_its_cache(make_engine, make_sink, fake_tokenizer) -> None:
    engine, decoder = make_engine(keep_cache_idle_s=3600)
    engine.start()
    try:
        sinks = [make_sink() for _ in range(3)]
        for sink in sinks:
            engine.submit(request(fake_tokenizer, "abc", 3), sink)
        assert all(s.done.wait(5) for s in sinks)
    finally:
        engine.stop()
    assert not decoder.trimmed.is_set()


def test_keep_cache_idle_s_travels_through_the_config_parameters() -> None:
    limits = scheduler.EngineLimits(keep_cache_idle_s=2.5)
    assert scheduler.EngineLimits.from_parameters(limits.as_parameters()) == limits
    with pytest.raises(ValueError, match="keep_cache_idle_s"):
        scheduler.EngineLimits.from_parameters({"keep_cache_idle_s": "soon"})


def test_token_logprobs_of_a_large_vocabulary_equal_a_float64_log_softmax():
    import numpy as np

    from pointsman.engine.scheduler import token_logprobs

    logits = (np.random.default_rng(4).standard_normal((4, 32000)) * 5).astype(np.float32)
    tokens = np.array([0, 31999, int(np.argmax(logits[2])), 17])
    rows = logits.astype(np.float64)
    expected = rows[np.arange(4), tokens] - rows.max(axis=1) - np.log(np.exp(rows - rows.max(axis=1)[:, None]).sum(1))
    assert token_logprobs(logits, tokens) == pytest.approx(expected, abs=1e-5)
