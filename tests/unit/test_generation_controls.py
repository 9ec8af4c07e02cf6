"""Generation controls against reference implementations: penalties, min_tokens, stop sequences.

Repetition penalty and min_tokens are checked against transformers' logits processors,
presence and frequency penalties against OpenAI's published formula, stop sequences
against "the full text cut before the first stop" under every way of splitting the stream.
"""

from __future__ import annotations

import numpy as np
import pytest

from pointsman.engine.sampling import Sampler, SamplingParams, TokenHistory, penalized_logits
from pointsman.engine.scheduler import GenerationRequest
from pointsman.engine.stop import StopMatcher
from pointsman.errors import InvalidRequest
from pointsman.policy.contract import parse_generate, parse_router

torch = pytest.importorskip("torch")
logits_process = pytest.importorskip("transformers.generation.logits_process")

VOCAB = 50
RNG = np.random.default_rng(11)


def adjusted_logits(logits: np.ndarray, params: SamplingParams, prompt_ids: list[int],
                    generated: list[int]) -> np.ndarray:
    """The penalised logits after this prompt and output, from a history built at once."""
    history = TokenHistory(prompt_ids)
    for token in generated:
        history.add(token)
    return penalized_logits(logits, params, history)


def openai_penalties(logits: np.ndarray, generated: list[int], presence: float, frequency: float) -> np.ndarray:
    """OpenAI's formula: mu[j] - c[j] * alpha_frequency - float(c[j] > 0) * alpha_presence."""
    out = logits.astype(np.float64).copy()
    for j in range(out.shape[0]):
        count = generated.count(j)
        out[j] -= count * frequency + float(count > 0) * presence
    return out


@pytest.mark.parametrize("penalty", [0.5, 1.0, 1.3, 2.0])
def test_repetition_penalty_matches_transformers_processor(penalty: float) -> None:
    logits = RNG.standard_normal(VOCAB).astype(np.float32)
    prompt, generated = [3, 7, 7, 12], [12, 40, 3]
    reference = logits_process.RepetitionPenaltyLogitsProcessor(penalty)(
        torch.tensor([prompt + generated]), torch.tensor(logits[None, :]))[0].numpy()
    ours = adjusted_logits(logits, SamplingParams(repetition_penalty=penalty), prompt, generated)
    np.testing.assert_allclose(ours, reference, rtol=1e-6)


@pytest.mark.parametrize(("presence", "frequency"), [(0.0, 0.5), (1.2, 0.0), (-2.0, 2.0), (0.7, -0.4)])
def test_presence_and_frequency_penalties_follow_openai_formula(presence: float, frequency: float) -> None:
    logits = RNG.standard_normal(VOCAB).astype(np.float32)
    generated = [5, 5, 5, 9, 30, 9]
    ours = adjusted_logits(logits, SamplingParams(presence_penalty=presence, frequency_penalty=frequency),
                           prompt_ids=[1, 2, 5], generated=generated)  # the prompt does not count
    np.testing.assert_allclose(ours, openai_penalties(logits, generated, presence, frequency), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("generated", [0, 2, 3, 6])
def test_min_tokens_matches_transformers_min_new_tokens(generated: int) -> None:
    logits = RNG.standard_normal(VOCAB).astype(np.float32)
    prompt = [4, 8, 15]
    history = [16, 23, 42, 4, 8, 15][:generated]
    reference = logits_process.MinNewTokensLengthLogitsProcessor(
        prompt_length_to_skip=len(prompt), min_new_tokens=3, eos_token_id=0)(
        torch.tensor([prompt + history]), torch.tensor(logits[None, :]))[0].numpy()
    ours = adjusted_logits(logits, SamplingParams(min_tokens=3, eos_ids=(0,)), prompt, history)
    np.testing.assert_array_equal(ours, reference)


def test_penalty_changes_the_greedy_choice() -> None:
    logits = np.zeros(VOCAB, np.float32)
    logits[[7, 8]] = [2.0, 1.9]
    assert Sampler(SamplingParams()).choose(logits, (), (7,)) == 7
    assert Sampler(SamplingParams(frequency_penalty=0.5)).choose(logits, (), (7,)) == 8
    assert Sampler(SamplingParams(repetition_penalty=1.2)).choose(logits, (7,), ()) == 8


def reference_penalties(logits: np.ndarray, params: SamplingParams, prompt: list[int],
                        generated: list[int]) -> np.ndarray:
    """The references: transformers' repetition penalty, then OpenAI's presence and frequency formula."""
    repeated = logits_process.RepetitionPenaltyLogitsProcessor(params.repetition_penalty)(
        torch.tensor([prompt + generated]), torch.tensor(logits[None, :]))[0].numpy()
    return openai_penalties(repeated, generated, params.presence_penalty, params.frequency_penalty)


def test_a_history_grown_token_by_token_penalises_as_the_references_at_every_step() -> None:
    """100 output tokens after a 40-token prompt, both with repeats: the vectors grow past their first room."""
    params = SamplingParams(repetition_penalty=1.3, presence_penalty=0.5, frequency_penalty=0.4)
    prompt = [int(t) for t in RNG.integers(0, 30, 40)]
    generated = [int(t) for t in RNG.integers(0, VOCAB, 100)]
    history = TokenHistory(prompt)
    for step, token in enumerate([*generated, None]):
        logits = RNG.standard_normal(VOCAB).astype(np.float32)
        np.testing.assert_allclose(penalized_logits(logits, params, history),
                                   reference_penalties(logits, params, prompt, generated[:step]), rtol=1e-5, atol=1e-6)
        if token is not None:
            history.add(token)


def test_the_sampler_keeps_its_history_only_while_the_output_extends_it() -> None:
    logits = np.zeros(VOCAB, np.float32)
    logits[[7, 8]] = [2.0, 1.9]
    sampler = Sampler(SamplingParams(repetition_penalty=2.0))
    prompt = (1, 2)
    output = [7]
    assert sampler.choose(logits, prompt, output) == 8  # 7 was generated: penalised
    output.append(8)
    assert sampler.choose(logits, prompt, output) == 7  # both penalised alike
    assert sampler.choose(logits, prompt, [7, 9]) == 8  # another output of the same length: 8 is not penalised
    assert sampler.choose(logits, prompt, [9]) == 7  # a shorter one
    assert sampler.choose(logits, (7,), []) == 8  # another prompt
    assert sampler.choose(logits, (1, 2), []) == 7  # an equal prompt that is another object: afresh as well


# -- stop sequences ----------------------------------------------------------------------
def reference_stop(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    hits = [text.find(s) for s in stops if s in text]
    return (text[:min(hits)], True) if hits else (text, False)


def splits(text: str):
    """Every way of cutting `text` into pieces of 1-3 characters (bounded), and the whole."""
    yield [text]
    for size in (1, 2, 3):
        yield [text[i:i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize(("text", "stops"), [
    ("hello world. bye", (".",)),
    ("abcabd", ("abd",)),
    ("one\n\ntwo", ("\n\n", "two")),
    ("ENDING at the END", ("END ", "at")),
    ("nothing here", ("xyz",)),
    ("aaab", ("aab",)),
    ("ab", ("abc",)),  # a held prefix that never completes is released at the end
])
def test_stop_matcher_equals_reference_for_every_split(text: str, stops: tuple[str, ...]) -> None:
    expected, stopped = reference_stop(text, stops)
    for pieces in splits(text):
        matcher = StopMatcher(stops)
        emitted = []
        for piece in pieces:
            out, done = matcher.push(piece)
            emitted.append(out)
            assert expected.startswith("".join(emitted)), "emitted text that is not in the final answer"
            if done:
                break
        emitted.append(matcher.flush())
        assert ("".join(emitted), matcher.stopped) == (expected, stopped)
        assert matcher.text == expected


def test_engine_ends_at_stop_and_streams_nothing_of_it(make_engine, make_sink, fake_tokenizer) -> None:
    engine, _ = make_engine()
    plain = make_sink()
    engine.submit(GenerationRequest(tuple(fake_tokenizer.encode("abc")), 30, stream=True), plain)
    engine.run_until_idle()
    full = plain.result.text
    stop = full[10:12]
    for stream in (True, False):
        sink = make_sink()
        engine.submit(GenerationRequest(tuple(fake_tokenizer.encode("abc")), 30, stream=stream, stop=(stop,)), sink)
        engine.run_until_idle()
        assert (sink.result.text, sink.result.finish_reason) == (reference_stop(full, (stop,))[0], "stop")
        if stream:
            assert "".join(sink.pieces) == sink.result.text


def test_engine_min_tokens_holds_eos_back(make_engine, make_sink, fake_tokenizer) -> None:
    engine, _ = make_engine(eos_at_length=5)
    sink = make_sink()
    engine.submit(GenerationRequest(tuple(fake_tokenizer.encode("abc")), 20,
                                    sampling=SamplingParams(min_tokens=6)), sink)
    engine.run_until_idle()
    assert (sink.result.finish_reason, sink.result.tokens) == ("eos", 6)


# -- the contract --------------------------------------------------------------------------
@pytest.mark.parametrize(("fields", "field", "accepted"), [
    ({"repetition_penalty": 0}, "repetition_penalty", "a number > 0"),
    ({"repetition_penalty": -1.5}, "repetition_penalty", "a number > 0"),
    ({"presence_penalty": 2.5}, "presence_penalty", "from -2 to 2"),
    ({"frequency_penalty": -3}, "frequency_penalty", "from -2 to 2"),
    ({"stop": [""]}, "stop", "non-empty strings"),
    ({"stop": 5}, "stop", "non-empty strings"),
    ({"stop": ["x"] * 17}, "stop", "at most 16"),
    ({"min_tokens": -1}, "min_tokens", "from 0 to max_tokens"),
    ({"min_tokens": 30, "max_tokens": 10}, "min_tokens", "at most max_tokens (10)"),
    ({"min_length": 30}, "min_tokens", "at most max_tokens (20)"),
    ({"min_tokens": 2, "min_length": 2}, "min_length", "alias of 'min_tokens'"),
    ({"exclude_input_in_output": "maybe"}, "exclude_input_in_output", "true or false"),
])
@pytest.mark.parametrize("parse", [parse_generate, parse_router])
def test_bad_generation_controls_name_the_field(parse, fields: dict, field: str, accepted: str) -> None:
    with pytest.raises(InvalidRequest) as error:
        parse({"text_input": "hi", **fields})
    assert error.value.field == field
    assert accepted in str(error.value)


def test_generation_controls_parse_with_aliases() -> None:
    params = parse_generate({"prompt": "hi", "max_length": 8, "min_length": 8, "stop": "\n",
                             "exclude_input_in_output": False})
    assert (params.text_input, params.max_tokens, params.min_tokens, params.stop) == ("hi", 8, 8, ("\n",))
    assert params.exclude_input_in_output is False
    defaults = parse_generate({"text_input": "hi"})
    assert (defaults.repetition_penalty, defaults.presence_penalty, defaults.frequency_penalty, defaults.stop,
            defaults.min_tokens, defaults.exclude_input_in_output) == (1.0, 0.0, 0.0, (), 0, True)

