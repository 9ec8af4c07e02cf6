"""`switchyard export`: one checkpoint into one model folder, skipped when up to date.

    export_model(Path("build/checkpoints/gpt2"), "gpt2", Path("model_repository"))
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from export.repository import LLM_ADAPTER, LlmFolderSpec, write_llm_folder

LOGGER = logging.getLogger(__name__)
STAMP = "export.json"


def checkpoint_digest(checkpoint: Path) -> str:
    """Digest of the checkpoint's file names, sizes and mtimes, plus the adapter source."""
    h = hashlib.sha256()
    for path in sorted(p for p in checkpoint.rglob("*") if p.is_file()):
        st = path.stat()
        h.update(f"{path.relative_to(checkpoint)}:{st.st_size}:{st.st_mtime_ns}".encode())
    h.update(LLM_ADAPTER.read_bytes())
    h.update(Path(__file__).with_name("onnx_export.py").read_bytes())
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
        console.print(f"[green]{name}[/]: up to date, skipped")
        return json.loads((folder / "1" / STAMP).read_text())

    from transformers import AutoConfig, AutoTokenizer

    from export.onnx_export import export_decoder

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"{name}: reading tokenizer", total=3)
        config = AutoConfig.from_pretrained(checkpoint)
        tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        with tempfile.TemporaryDirectory() as tmp:
            tokenizer.save_pretrained(tmp)
            tokenizer_json = Path(tmp) / "tokenizer.json"
            eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else config.eos_token_id
            context = getattr(config, "n_positions", None) or getattr(config, "n_ctx")
            spec = LlmFolderSpec(name=name, context_length=int(context), eos_token_id=int(eos))
            write_llm_folder(folder, spec, tokenizer_json)
        progress.update(task, advance=1, description=f"{name}: exporting ONNX and checking parity")
        report = export_decoder(checkpoint, folder / "1")
        progress.update(task, advance=2, description=f"{name}: done")
    stamp = {
        "digest": digest, "checkpoint": str(checkpoint), "layers": report.layers,
        "max_abs_diff_prefill": report.max_abs_diff, "max_abs_diff_decode": report.max_abs_diff_step,
    }
    (folder / "1" / STAMP).write_text(json.dumps(stamp, indent=2))
    console.print(f"[green]{name}[/]: parity max |logit diff| prefill {report.max_abs_diff:.2e}, "
                  f"decode step {report.max_abs_diff_step:.2e} (limit 1e-3)")
    return stamp
