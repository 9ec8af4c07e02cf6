r"""Stop sequences over streamed text: never emit what may turn out to start a stop sequence.

    matcher = StopMatcher(("\\n\\n", "END"))
    emit, stopped = matcher.push("Hello EN")   # ("Hello ", False): "EN" is held back
    emit, stopped = matcher.push("D of it")    # ("", True): the stop text is not returned

Text is held back only while it is a prefix of some stop sequence, so a stream that
never comes near one is not delayed at all.
"""

from __future__ import annotations

from collections.abc import Sequence


class StopMatcher:
    """Filters one request's text pieces; `text` is everything emitted so far."""

    def __init__(self, stops: Sequence[str] = ()) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self._emitted: list[str] = []
        self.stopped = False

    def push(self, piece: str) -> tuple[str, bool]:
        """Add new text; return (text safe to emit now, whether a stop sequence was reached)."""
        if self.stopped:
            return "", True
        buffer = self._held + piece
        if not self._stops:
            return self._emit(buffer), False
        hits = [i for i in (buffer.find(s) for s in self._stops) if i >= 0]
        if hits:
            self.stopped = True
            self._held = ""
            return self._emit(buffer[:min(hits)]), True
        keep = self._longest_stop_prefix_suffix(buffer)
        self._held = buffer[len(buffer) - keep:] if keep else ""
        return self._emit(buffer[:len(buffer) - keep]), False

    def flush(self) -> str:
        """At the end of generation: the held text was no stop after all."""
        held, self._held = self._held, ""
        return "" if self.stopped else self._emit(held)

    @property
    def text(self) -> str:
        return "".join(self._emitted)

    def _emit(self, text: str) -> str:
        if text:
            self._emitted.append(text)
        return text

    def _longest_stop_prefix_suffix(self, buffer: str) -> int:
        """Length of the longest end of `buffer` that a stop sequence starts with."""
        best = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(buffer)), best, -1):
                if stop.startswith(buffer[len(buffer) - n:]):
                    best = n
                    break
        return best
