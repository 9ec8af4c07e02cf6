"""Incremental detokenization that never emits half of a multi-byte character.

    detok = IncrementalDetokenizer(tokenizer.decode)
    piece = detok.push(token_id)   # "" while a character is incomplete
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

REPLACEMENT = "\ufffd"


class IncrementalDetokenizer:
    """Turns a growing token list into text pieces that concatenate to the full decode.

    Each push decodes only a short window (the last emitted token onwards, TGI's
    prefix/read offsets), so a long generation costs linear, not quadratic, time.
    """

    def __init__(self, decode: Callable[[Sequence[int]], str]) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._prefix = 0  # window start: tokens already emitted, decoded again for context
        self._read = 0  # tokens before this one are emitted
        self._emitted: list[str] = []

    def push(self, token_id: int) -> str:
        """Add a token; return the newly completed text (possibly empty)."""
        self._ids.append(token_id)
        before = self._decode(self._ids[self._prefix:self._read])
        text = self._decode(self._ids[self._prefix:])
        if len(text) <= len(before) or text.endswith(REPLACEMENT) or not text.startswith(before):
            return ""  # an incomplete UTF-8 sequence (or nothing visible yet): wait for the next token
        piece = text[len(before):]
        self._prefix, self._read = self._read, len(self._ids)
        self._emitted.append(piece)
        return piece

    def flush(self) -> str:
        """Return whatever is left at the end, replacement characters included."""
        text = self._decode(self._ids)
        emitted = "".join(self._emitted)
        piece = text[len(emitted):] if text.startswith(emitted) else ""
        self._emitted = [text]
        self._prefix = self._read = len(self._ids)
        return piece

    @property
    def text(self) -> str:
        return self._decode(self._ids)
