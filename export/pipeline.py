"""`switchyard export`: one checkpoint into one model folder, skipped when up to date.

    export_model(Path("build/checkpoints/gpt2"), "gpt2", Path("model_repository"))
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from export.repository import LLM_ADAPTER, LlmFolderSpec, write_llm_folder

LOGGER = logging.getLogger(__name__)
STAMP = "export.json"
SUPPORTED_MODEL_TYPES = ("gpt2", "codegen")  # what export.onnx_export can trace


def checkpoint_digest(checkpoint: Path) -> str:
    """Digest of the checkpoint's file names, sizes and mtimes, plus the exporter source."""
    h = hashlib.sha256()
    for path in sorted(p for p in checkpoint.rglob("*") if p.is_file()):
        st = path.stat()
        h.update(f"{path.relative_to(checkpoint)}:{st.st_size}:{st.st_mtime_ns}".encode())
    for exporter in ("onnx_export.py", "repository.py"):  # the graph and the config they write
        h.update(Path(__file__).with_name(exporter).read_bytes())
    return h.hexdigest()


def is_up_to_date(folder: Path, digest: str) -> bool:
    stamp = folder / "1" / STAMP
    try:
        return json.loads(stamp.read_text())["digest"] == digest and (folder / "1" / "model.onnx").exists()
    except (OSError, ValueError, KeyError):
        return False


def export_model(checkpoint: Path, name: str, repository: Path, force: bool = False,
                 console: Console | None = None) -> dict:
    """Export one checkpoint; return the stamp (parity figures included)."""
    console = console or Console(stderr=True)
    folder = repository / name
    if not (checkpoint / "config.json").exists():
        raise FileNotFoundError(f"--checkpoint {checkpoint}: no config.json (a Hugging Face checkpoint folder is expected)")
    digest = checkpoint_digest(checkpoint)
    if not force and is_up_to_date(folder, digest):
        # the adapter is plain source: refresh it without re-exporting the graph
        shutil.copyfile(LLM_ADAPTER, folder / "1" / "model.py")
        console.print(f"[green]{name}[/]: up to date, skipped")
        return json.loads((folder / "1" / STAMP).read_text())

    from transformers import AutoConfig, AutoTokenizer

    from export.onnx_export import export_decoder

    config = AutoConfig.from_pretrained(checkpoint)
    if config.model_type not in SUPPORTED_MODEL_TYPES:  # before anything is written
        raise ValueError(f"{checkpoint}: model_type {config.model_type!r} is not supported "
                         f"({', '.join(SUPPORTED_MODEL_TYPES)})")
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    repository.mkdir(parents=True, exist_ok=True)
    # build the folder beside the repository and move it in only once it passed parity:
    # a refused export leaves no half-written folder (tritonserver would fail to start)
    # and keeps the model that was there before
    with Progress(*columns, console=console, transient=False) as progress, \
            tempfile.TemporaryDirectory(dir=repository.resolve().parent, prefix=f".export-{name}-") as staging:
        staged = Path(staging) / name
        task = progress.add_task(f"{name}: reading tokenizer", total=3)
        tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        tokenizer.save_pretrained(staging)
        eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else config.eos_token_id
        context = getattr(config, "n_positions", None) or getattr(config, "n_ctx")
        spec = LlmFolderSpec(name=name, context_length=int(context), eos_token_id=int(eos))
        write_llm_folder(staged, spec, Path(staging) / "tokenizer.json")
        progress.update(task, advance=1, description=f"{name}: exporting ONNX and checking parity")
        report = export_decoder(checkpoint, staged / "1")
        stamp = {
            "digest": digest, "checkpoint": str(checkpoint), "layers": report.layers,
            "max_abs_diff_prefill": report.max_abs_diff, "max_abs_diff_decode": report.max_abs_diff_step,
        }
        (staged / "1" / STAMP).write_text(json.dumps(stamp, indent=2))
        if folder.exists():
            shutil.rmtree(folder)
        shutil.move(str(staged), str(folder))
        progress.update(task, advance=2, description=f"{name}: done")
    console.print(f"[green]{name}[/]: parity max |logit diff| prefill {report.max_abs_diff:.2e}, "
                  f"decode step {report.max_abs_diff_step:.2e} (limit 1e-3)")
    return stamp
