"""`pointsman demo-models`: small local checkpoints of the three families, then export.

    build_demo_models(Path("build"), Path("model_repository"))

Nothing can be downloaded here, so the tokenizer is a byte-level BPE trained on text
that ships with this machine (Python's standard library and Debian's documentation).
The weights come from export/demo_weights/ (committed, made by export.train_demo_models:
codegen trained on Python source, gpt2 and distilgpt2 on English prose); without them,
seeded random initialisations. Shapes make distilgpt2 the fastest.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from pointsman.policy.catalog import Catalog, ModelEntry

LOGGER = logging.getLogger(__name__)
VOCAB_SIZE = 4096
EOS = "<|endoftext|>"
CORPUS_LIMIT_BYTES = 6_000_000
TRAINED = Path(__file__).with_name("demo_weights")  # committed; made by export.train_demo_models
WEIGHTS_STAMP = "demo_weights.sha256"
# name -> (family, layers, embedding width, heads)
DEMO_SHAPES = {
    "gpt2": ("gpt2", 4, 256, 4),
    "distilgpt2": ("gpt2", 2, 128, 4),
    "codegen": ("codegen", 4, 256, 4),
}
DEMO_CONTEXT = 512
# measured by `python -m pointsman.export.specialization --write` on the score split of export/task_corpus.py
SPECIALIZATION_RECORD = TRAINED / "perplexity.json"


@dataclass(frozen=True)
class DemoRouting:
    """A demo model's routing priors; its task scores come from SPECIALIZATION_RECORD."""

    capabilities: tuple[str, ...]
    quality_prior: float
    tokens_per_second_prior: float


# what export writes into each demo engine's config as pointsman.* metadata (priors are
# starting points only: the router measures live figures at run time)
DEMO_ROUTING = {
    "gpt2": DemoRouting(("general", "creative", "qa"), 0.8, 150.0),
    "distilgpt2": DemoRouting(("general", "reasoning"), 0.6, 400.0),
    "codegen": DemoRouting(("general", "coding"), 0.8, 150.0),
}


def demo_scores() -> dict[str, dict[str, float]]:
    import json

    return json.loads(SPECIALIZATION_RECORD.read_text())["scores"]


def demo_routing_flags(name: str):
    """The RoutingFlags export gets for demo model `name`."""
    from pointsman.export.pipeline import RoutingFlags

    routing = DEMO_ROUTING[name]
    return RoutingFlags(demo_scores()[name], routing.capabilities, routing.quality_prior,
                        routing.tokens_per_second_prior)


def demo_catalog() -> Catalog:
    """The catalog the router discovers from the exported demo models (for benchmarks and tests without a server)."""
    scores = demo_scores()
    return Catalog(ModelEntry(name=name, engine_model=f"{name}_stream", family=DEMO_SHAPES[name][0],
                              capabilities=r.capabilities, context_length=DEMO_CONTEXT,
                              specialization_score=scores[name], quality_prior=r.quality_prior,
                              tokens_per_second_prior=r.tokens_per_second_prior)
                   for name, r in DEMO_ROUTING.items())


def demo_checkpoint(build: Path, name: str) -> Path:
    return build / "checkpoints" / name

# the small demo models fall into loops of one token under greedy decoding (`_header_header...`);
# these penalties, written into each config.pbtxt as defaults, keep every README example readable
# (tests/integration/test_readme_examples.py); a request that names a penalty overrides its default
DEMO_SAMPLING_DEFAULTS = {"repetition_penalty": 1.2, "presence_penalty": 0.5, "frequency_penalty": 0.5}


def local_text_files() -> Iterator[Path]:
    """Python sources and prose that ship with the machine, in a stable order."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    yield from sorted(stdlib.glob("*.py"))
    for root in (Path("/usr/share/common-licenses"), Path("/usr/share/doc")):
        if root.exists():
            yield from sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in ("", ".txt", ".md"))


def corpus(limit: int = CORPUS_LIMIT_BYTES) -> list[str]:
    """Up to `limit` bytes of local UTF-8 text; files that are not UTF-8 are skipped."""
    texts, total = [], 0
    for path in local_text_files():
        try:
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        texts.append(text)
        total += len(text)
        if total >= limit:
            break
    return texts


def train_tokenizer(texts: list[str], out: Path):
    """Byte-level BPE over the corpus, wrapped as a transformers fast tokenizer."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=VOCAB_SIZE, min_frequency=2, special_tokens=[EOS], show_progress=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token=EOS, bos_token=EOS, unk_token=EOS)
    tokenizer.save_pretrained(out)
    return tokenizer


def new_model(name: str, tokenizer, context: int, seed: int = 0):
    """Build a seeded random initialisation of one demo model's shape."""
    import torch
    from transformers import CodeGenConfig, CodeGenForCausalLM, GPT2Config, GPT2LMHeadModel

    family, layers, width, heads = DEMO_SHAPES[name]
    torch.manual_seed(seed)
    eos = tokenizer.eos_token_id
    common = dict(vocab_size=len(tokenizer), n_positions=context, n_embd=width, n_layer=layers,
                  n_head=heads, bos_token_id=eos, eos_token_id=eos)
    if family == "gpt2":
        return GPT2LMHeadModel(GPT2Config(**common))
    return CodeGenForCausalLM(CodeGenConfig(n_ctx=context, rotary_dim=width // heads // 2, **common))


def trained_weights_digest(name: str) -> str | None:
    """Digest of the committed trained weights of `name`, or None when there are none."""
    folder = TRAINED / name
    if not (folder / "model.safetensors").exists():
        return None
    weights = (folder / "model.safetensors").read_bytes() + (folder / "config.json").read_bytes()
    return hashlib.sha256(weights).hexdigest()


def build_checkpoint(name: str, tokenizer, out: Path, context: int, seed: int = 0) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    if trained_weights_digest(name):
        model = AutoModelForCausalLM.from_pretrained(TRAINED / name, dtype=torch.float32)
    else:
        model = new_model(name, tokenizer, context, seed)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / WEIGHTS_STAMP).write_text(trained_weights_digest(name) or "random")


def checkpoint_is_current(name: str, checkpoint: Path) -> bool:
    """Built, and from the weights now committed (random ones count while none are)."""
    try:
        return (checkpoint / "config.json").exists() and \
            (checkpoint / WEIGHTS_STAMP).read_text() == (trained_weights_digest(name) or "random")
    except OSError:
        return False


def build_demo_models(build: Path, repository: Path, force: bool = False) -> None:
    """Make the demo checkpoints (if missing) and export each into the repository."""
    from pointsman.export.pipeline import export_model

    console = Console(stderr=True)
    tokenizer_dir = build / "tokenizer"
    if (TRAINED / "tokenizer" / "tokenizer.json").exists():
        from transformers import AutoTokenizer

        # the trained weights were made with this tokenizer: never retrain it locally
        tokenizer = AutoTokenizer.from_pretrained(TRAINED / "tokenizer")
    elif force or not (tokenizer_dir / "tokenizer.json").exists():
        console.print("training the demo byte-level BPE tokenizer on local text")
        tokenizer = train_tokenizer(corpus(), tokenizer_dir)
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    for name in DEMO_SHAPES:
        checkpoint = demo_checkpoint(build, name)
        if force or not checkpoint_is_current(name, checkpoint):
            console.print(f"building demo checkpoint {name} at {checkpoint}")
            build_checkpoint(name, tokenizer, checkpoint, DEMO_CONTEXT)
        export_model(checkpoint, name, repository, force=force, console=console, routing=demo_routing_flags(name),
                     sampling_defaults=DEMO_SAMPLING_DEFAULTS)
    from pointsman.export.classifier import build_classifier

    build_classifier(repository, force=force)  # the router's prompt classifier (skipped when up to date)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="pointsman demo-models", description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=Path("build"))
    parser.add_argument("--model-repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args(argv)
    build_demo_models(args.build_dir, args.model_repository, args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
