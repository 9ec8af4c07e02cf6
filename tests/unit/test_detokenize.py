"""Streaming detokenization over a real byte-level BPE: no split characters, pieces add up."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from pointsman.engine.detokenize import REPLACEMENT, IncrementalDetokenizer
from pointsman.engine.tokenizer import TextTokenizer

TEXTS = [
    "plain ascii, the cat sat",
    "héllo wörld",
    "日本語のテキスト",
    "emoji 🙂🚀 and ∑ math",
    "mixed: naïve café — 🙂 ok",
]


@pytest.fixture(scope="module")
def tokenizer() -> TextTokenizer:
    """Train a tiny byte-level BPE like the exported models': non-ASCII characters span several tokens."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(["hello world, the cat sat on the mat"] * 10, trainer)
    return TextTokenizer(bpe)


def stream(tokenizer: TextTokenizer, ids: list[int]) -> list[str]:
    detok = IncrementalDetokenizer(tokenizer.decode)
    pieces = [detok.push(i) for i in ids]
    return [*pieces, detok.flush()]


@pytest.mark.parametrize("text", TEXTS)
def test_streamed_pieces_concatenate_to_the_full_decode(tokenizer: TextTokenizer, text: str) -> None:
    ids = tokenizer.encode(text)
    assert "".join(stream(tokenizer, ids)) == tokenizer.decode(ids) == text


@pytest.mark.parametrize("text", TEXTS)
def test_no_streamed_piece_holds_part_of_a_character(tokenizer: TextTokenizer, text: str) -> None:
    pieces = stream(tokenizer, tokenizer.encode(text))
    assert not any(REPLACEMENT in piece for piece in pieces)


@pytest.mark.parametrize("char", ["é", "日", "🙂"])
def test_a_multi_byte_character_comes_out_whole_with_its_last_byte(tokenizer: TextTokenizer, char: str) -> None:
    ids = tokenizer.encode(char)
    assert len(ids) == len(char.encode()), "the tiny vocabulary has one token per byte here"
    assert stream(tokenizer, ids) == [""] * (len(ids) - 1) + [char, ""]


def test_ending_inside_a_character_flushes_what_the_tokenizer_decodes(tokenizer: TextTokenizer) -> None:
    ids = tokenizer.encode("ok 🙂")[:-1]  # max_tokens cut the emoji short
    pieces = stream(tokenizer, ids)
    assert "".join(pieces[:-1]) == "ok "
    assert "".join(pieces) == tokenizer.decode(ids)


def test_text_property_is_the_full_decode(tokenizer: TextTokenizer) -> None:
    detok = IncrementalDetokenizer(tokenizer.decode)
    ids = tokenizer.encode(TEXTS[3])
    for i in ids:
        detok.push(i)
    assert detok.text == TEXTS[3]


def test_special_tokens_in_the_stream_decode_to_nothing(tokenizer: TextTokenizer) -> None:
    eos = 0  # <|endoftext|>, skipped when decoding
    ids = tokenizer.encode("ab") + [eos, eos] + tokenizer.encode(" é!") + [eos]
    pieces = stream(tokenizer, ids)
    assert "".join(pieces) == tokenizer.decode(ids) == "ab é!"
    assert REPLACEMENT not in "".join(pieces)


def test_each_push_decodes_only_a_short_window(tokenizer: TextTokenizer) -> None:
    windows: list[int] = []

    def decode(ids) -> str:
        windows.append(len(ids))
        return tokenizer.decode(ids)

    detok = IncrementalDetokenizer(decode)
    for i in tokenizer.encode("the cat sat on the mat " * 40 + "日本語 🙂"):
        detok.push(i)
    assert max(windows) <= 6  # " 🙂" is five byte tokens held back, plus one emitted token of context
