"""Incremental detokenization that never emits half of a multi-byte character.

    detok = IncrementalDetokenizer(tokenizer.decode)
    piece = detok.push(token_id)   # "" while a character is incomplete
"""

from __future__ import annotations

from typing import Callable, Sequence

REPLACEMENT = "\ufffd"


class IncrementalDetokenizer:
    """Turns a growing token list into text pieces that concatenate to the full decode."""

    def __init__(self, decode: Callable[[Sequence[int]], str]) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._emitted = ""

    def push(self, token_id: int) -> str:
        """Add a token; return the newly completed text (possibly empty)."""
        self._ids.append(token_id)
        text = self._decode(self._ids)
        if text.endswith(REPLACEMENT) or not text.startswith(self._emitted):
            return ""  # an incomplete UTF-8 sequence: wait for the next token
        piece = text[len(self._emitted):]
        self._emitted = text
        return piece

    def flush(self) -> str:
        """Return whatever is left at the end, replacement characters included."""
        text = self._decode(self._ids)
        piece = text[len(self._emitted):] if text.startswith(self._emitted) else ""
        self._emitted = text
        return piece

    @property
    def text(self) -> str:
        return self._decode(self._ids)
