"""Local text for the demo models: Python source (code) and English prose, split by file.

    train, held_out = split(code_documents())
    chunks = held_out_chunks("prose", tokenizer, count=40, length=128)

Everything here ships with the machine: the standard library's .py files for code; for
prose, Python's bundled reference text (pydoc_data), the licences in
/usr/share/common-licenses and README/text files of Debian packages, keeping only files
that read as prose. About a tenth of the files (by a stable hash of the path) are held
out for perplexity measurements and never trained on.
"""

from __future__ import annotations

import hashlib
import sysconfig
from collections.abc import Iterator
from pathlib import Path

DOMAINS = ("code", "prose")
HELD_OUT_SHARE = 0.1
MAX_FILE_CHARS = 200_000
LIMIT_CHARS = 6_000_000


def _read(path: Path) -> str | None:
    try:
        if path.stat().st_size > MAX_FILE_CHARS * 2:
            return None
        return path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def is_prose(text: str) -> bool:
    """Mostly letters and spaces in longish lines: sentences, not tables, code or changelogs."""
    if len(text) < 400:
        return False
    letters = sum(c.isalpha() or c == " " for c in text)
    lines = [line for line in text.splitlines() if line.strip()]
    return letters / len(text) > 0.82 and sum(map(len, lines)) / max(1, len(lines)) > 40


def code_documents(limit: int = LIMIT_CHARS) -> list[tuple[str, str]]:
    """(name, text) of standard-library modules, in a stable order."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    docs, total = [], 0
    for path in sorted(stdlib.glob("*.py")) + sorted(stdlib.glob("*/*.py")):
        if "test" in path.parent.name or path.name.startswith("test_"):  # tests are mostly fixtures
            continue
        text = _read(path)
        if text and len(text) <= MAX_FILE_CHARS:
            docs.append((f"stdlib/{path.relative_to(stdlib)}", text))
            total += len(text)
            if total >= limit:
                break
    return docs


def _prose_files() -> Iterator[tuple[str, str]]:
    from pydoc_data.topics import topics

    for key in sorted(topics):
        yield f"pydoc/{key}", topics[key]
    for root in (Path("/usr/share/common-licenses"), Path("/usr/share/doc")):
        if not root.exists():
            continue
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            if path.suffix in ("", ".txt", ".md", ".markdown", ".rst") and "changelog" not in path.name.lower() \
                    and path.name != "copyright":
                text = _read(path)
                if text and len(text) <= MAX_FILE_CHARS:
                    yield str(path), text


def prose_documents(limit: int = LIMIT_CHARS) -> list[tuple[str, str]]:
    """(name, text) of local English prose, in a stable order; duplicates (shared licences) once."""
    docs, seen, total = [], set(), 0
    for name, text in _prose_files():
        digest = hashlib.sha256(text.encode()).digest()
        if digest in seen or not is_prose(text):
            continue
        seen.add(digest)
        docs.append((name, text))
        total += len(text)
        if total >= limit:
            break
    return docs


def documents(domain: str) -> list[tuple[str, str]]:
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {', '.join(DOMAINS)}, got {domain!r}")
    return code_documents() if domain == "code" else prose_documents()


def is_held_out(name: str) -> bool:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") / 2**32 < HELD_OUT_SHARE


def split(docs: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """(training texts, held-out texts)."""
    train = [text for name, text in docs if not is_held_out(name)]
    held_out = [text for name, text in docs if is_held_out(name)]
    return train, held_out


def held_out_chunks(domain: str, encode, count: int, length: int) -> list[list[int]]:
    """`count` windows of `length` token ids from the held-out files, spread evenly, reproducible.

    encode: text -> list of token ids (the demo models share one tokenizer).
    """
    _, held_out = split(documents(domain))
    stream: list[int] = []
    for text in held_out:
        stream.extend(encode(text))
    if len(stream) < length:
        raise ValueError(f"only {len(stream)} held-out {domain} tokens")
    step = max(1, (len(stream) - length) // count)
    return [stream[i:i + length] for i in range(0, step * count, step)][:count]
