"""Train the demo checkpoints on local text, so each is good at a different task.

    python -m pointsman.export.train_demo_models --stage pretrain     # from scratch, ~15 min on one core
    python -m pointsman.export.train_demo_models --stage specialise   # then fine-tune, ~10 min on 3 cores
    python -m pointsman.export.train_demo_models --stage polish       # then a short last pass
    python -m pointsman.export.train_demo_models --steps 20           # a smoke run

Pretrain: codegen learns Python source (the standard library); gpt2 and distilgpt2 learn
English prose (export/demo_corpus.py). Specialise (starting from the pretrained weights in
--out): each model is fine-tuned on its own task's train split (export/task_corpus.py),
three parts in four, and on English prose, one part in four so that any prompt gets words:
codegen on standard-library functions (coding), gpt2 on questions about local
documentation (qa), distilgpt2 on generated word problems with worked answers
(reasoning). Shapes come from export.demo_models.DEMO_SHAPES, so distilgpt2 stays the
smallest and fastest. Fixed seeds: the same machine gives the same
weights. The result is committed (export/demo_weights/: the shared tokenizer, and per
model config.json + fp16 model.safetensors, a few MB each), because training takes longer
than `make setup` may; `pointsman demo-models` builds the checkpoints from it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np

from pointsman.export.demo_corpus import documents, split

LOGGER = logging.getLogger(__name__)
WEIGHTS = Path(__file__).with_name("demo_weights")
SEED = 1234
# name -> (domain, steps, learning rate)
RECIPES = {
    "codegen": ("code", 240, 2e-3),
    "gpt2": ("prose", 240, 2e-3),
    "distilgpt2": ("prose", 300, 3e-3),
}
# name -> (task, steps, learning rate) of the specialise stage
SPECIALISE = {
    "codegen": ("coding", 200, 1e-3),
    "gpt2": ("qa", 200, 1e-3),
    "distilgpt2": ("reasoning", 400, 2e-3),
}
TASK_SHARE = 0.75  # the rest of each fine-tuning batch is general prose
# polish: a short last pass with documents joined by a blank line instead of end-of-sequence,
# so a model no longer ends a reply right after a prompt's first word (steps, learning rate)
POLISH = (80, 5e-4)
BATCH = 16
SEQUENCE = 128
WARMUP = 30


def prose_paragraphs(texts: list[str]) -> list[str]:
    """Prose with its hard line wraps and blank-line runs removed: one paragraph a line."""
    out = []
    for text in texts:
        paragraphs = [" ".join(p.split()) for p in text.split("\n\n")]
        out.append("\n".join(p for p in paragraphs if len(p) > 40))
    return out


def mixed_stream(task: np.ndarray, prose: np.ndarray, rng: np.random.Generator, length: int) -> np.ndarray:
    """Windows drawn TASK_SHARE from the task stream, the rest from prose (one array of windows)."""
    picks = rng.random(length) < TASK_SHARE
    starts_task = rng.integers(0, len(task) - SEQUENCE - 1, size=length)
    starts_prose = rng.integers(0, len(prose) - SEQUENCE - 1, size=length)
    return np.stack([task[s:s + SEQUENCE] if p else prose[q:q + SEQUENCE]
                     for p, s, q in zip(picks, starts_task, starts_prose, strict=True)])


def token_stream(texts: list[str], tokenizer, eos: int | list[int]) -> np.ndarray:
    """Token ids of the texts, each followed by `eos` (an id, or a list of ids such as a blank line)."""
    ids: list[int] = []
    after = eos if isinstance(eos, list) else [eos]
    for encoding in tokenizer.backend_tokenizer.encode_batch(texts):
        ids.extend(encoding.ids)
        ids.extend(after)
    return np.array(ids, dtype=np.int64)


def learning_rate(step: int, steps: int, peak: float) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < WARMUP:
        return peak * (step + 1) / WARMUP
    progress = (step - WARMUP) / max(1, steps - WARMUP)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(model, stream: np.ndarray, steps: int, peak: float, seed: int, windows: np.ndarray | None = None
          ) -> list[float]:
    """AdamW on random windows of `stream`, or on `windows` in order (BATCH a step) when given."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=peak, betas=(0.9, 0.95), weight_decay=0.01)
    model.train()
    losses = []
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, peak)
        if windows is not None:
            batch = torch.from_numpy(windows[step * BATCH:(step + 1) * BATCH])
        else:
            starts = rng.integers(0, len(stream) - SEQUENCE - 1, size=BATCH)
            batch = torch.from_numpy(np.stack([stream[s:s + SEQUENCE] for s in starts]))
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % 20 == 0 or step == steps - 1:
            LOGGER.info("step %d/%d loss %.3f", step + 1, steps, losses[-1])
    return losses


def held_out_loss(model, stream: np.ndarray, windows: int = 24) -> float:
    import torch

    model.eval()
    step = (len(stream) - SEQUENCE) // windows
    with torch.no_grad():
        batch = torch.from_numpy(np.stack([stream[i * step:i * step + SEQUENCE] for i in range(windows)]))
        return float(model(input_ids=batch, labels=batch).loss)


def specialise(args, tokenizer, polish: bool = False) -> int:
    """Fine-tune each pretrained checkpoint in args.out on its task (plus prose), in place.

    polish: the short last pass (POLISH), documents separated by a blank line, not end-of-sequence.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from pointsman.export.task_corpus import task_pairs, training_text

    eos = tokenizer.backend_tokenizer.encode("\n\n").ids if polish else tokenizer.eos_token_id
    prose_train, _ = split(documents("prose"))
    prose = token_stream(prose_paragraphs(prose_train), tokenizer, eos)
    record_path = args.out / "training.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    for name in args.models:
        task, steps, peak = SPECIALISE[name]
        if polish:
            steps, peak = POLISH
        steps = args.steps or steps
        stream = token_stream(training_text(task), tokenizer, eos)
        model = AutoModelForCausalLM.from_pretrained(args.out / name, dtype=torch.float32)
        started = time.perf_counter()
        windows = mixed_stream(stream, prose, np.random.default_rng(SEED), steps * BATCH)
        losses = train(model, stream, steps, peak, SEED, windows=windows)
        held = {}
        for other in SPECIALISE.values():
            pairs = task_pairs(other[0], "score")
            held[other[0]] = round(held_out_loss(model, token_stream([f"{p.prompt}\n{p.answer}" for p in pairs],
                                                                      tokenizer, tokenizer.eos_token_id)), 4)
        model.half().save_pretrained(args.out / name)
        entry = record.get(name, {})
        entry["polish" if polish else "specialise"] = {
                               "task": task, "task_share": TASK_SHARE, "steps": steps, "peak_lr": peak,
                               "final_loss": round(losses[-1], 4), "score_split_loss": held,
                               "seconds": round(time.perf_counter() - started)}
        record[name] = entry
        record_path.write_text(json.dumps(record, indent=2) + "\n")
        LOGGER.info("%s: specialised on %s in %.0fs, score-split loss %s", name, task,
                    time.perf_counter() - started, held)
    return 0


def main(argv: list[str] | None = None) -> int:
    import torch

    from pointsman.export.demo_models import DEMO_CONTEXT, DEMO_SHAPES, corpus, new_model, train_tokenizer

    parser = argparse.ArgumentParser(prog="python -m pointsman.export.train_demo_models",
        description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    parser.add_argument("--stage", choices=("pretrain", "specialise", "polish"), default="specialise")
    parser.add_argument("--models", nargs="*", default=list(RECIPES))
    parser.add_argument("--steps", type=int, help="override every recipe's steps (smoke runs)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)

    tokenizer_dir = args.out / "tokenizer"
    if (tokenizer_dir / "tokenizer.json").exists():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    else:
        tokenizer = train_tokenizer(corpus(), tokenizer_dir)
    if args.stage in ("specialise", "polish"):
        return specialise(args, tokenizer, polish=args.stage == "polish")
    streams = {}
    for domain in ("code", "prose"):
        train_texts, held_out = split(documents(domain))
        streams[domain] = (token_stream(train_texts, tokenizer, tokenizer.eos_token_id),
                           token_stream(held_out, tokenizer, tokenizer.eos_token_id))
        LOGGER.info("%s: %d training tokens, %d held out", domain, len(streams[domain][0]), len(streams[domain][1]))

    record_path = args.out / "training.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    for name in args.models:
        domain, steps, peak = RECIPES[name]
        steps = args.steps or steps
        model = new_model(name, tokenizer, DEMO_CONTEXT, seed=SEED)
        started = time.perf_counter()
        losses = train(model, streams[domain][0], steps, peak, SEED)
        held = {d: round(held_out_loss(model, streams[d][1]), 4) for d in streams}
        model.half().save_pretrained(args.out / name)  # fp16 halves the committed size
        record[name] = {"domain": domain, "shape": DEMO_SHAPES[name], "steps": steps, "batch": BATCH,
                        "sequence": SEQUENCE, "peak_lr": peak, "seed": SEED, "final_loss": round(losses[-1], 4),
                        "held_out_loss": held, "seconds": round(time.perf_counter() - started)}
        record_path.write_text(json.dumps(record, indent=2) + "\n")
        LOGGER.info("%s: trained on %s in %.0fs, held-out loss %s", name, domain, time.perf_counter() - started, held)
    return 0


if __name__ == "__main__":
    sys.exit(main())
