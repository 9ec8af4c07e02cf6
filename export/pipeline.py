"""`pointsman export`: one checkpoint into one model folder, skipped when up to date.

    export_model(Path("build/checkpoints/gpt2"), "gpt2", Path("model_repository"))
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from pointsman.export.families import (
    bos_prefix,
    check_supported,
    context_length,
    end_of_sequence_ids,
    generation_defaults,
)
from pointsman.export.repository import (
    LlmFolderSpec,
    engine_name,
    read_parameters,
    set_routing_parameters,
    write_llm_folder,
    write_twin_folder,
)
from pointsman.policy.routing_metadata import entry_from_parameters, routing_parameters

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoutingFlags:
    """What export's routing flags say (--task-scores, --capabilities, --quality-prior, speed priors)."""

    task_scores: dict[str, float]
    capabilities: tuple[str, ...]
    quality_prior: float
    tokens_per_second_prior: float | None = None
    time_to_first_token_prior: float | None = None


def _family(checkpoint: Path) -> str:
    return json.loads((checkpoint / "config.json").read_text()).get("model_type", "")


def checkpoint_digest(checkpoint: Path, variant: str = "float32") -> str:
    """Digest of the checkpoint's file names, sizes and mtimes, the variant and the exporter source."""
    h = hashlib.sha256(variant.encode())
    for path in sorted(p for p in checkpoint.rglob("*") if p.is_file()):
        st = path.stat()
        h.update(f"{path.relative_to(checkpoint)}:{st.st_size}:{st.st_mtime_ns}".encode())
    # the graph and the config the exporter's modules write
    for exporter in ("onnx_export.py", "gqa_attention.py", "graph_passes.py", "families.py", "precision.py",
                     "repository.py"):
        h.update(Path(__file__).with_name(exporter).read_bytes())
    return h.hexdigest()


def export_record(folder: Path) -> dict[str, str]:
    """What the last export wrote into the folder's config parameters ({} if none)."""
    try:
        params = read_parameters(folder)
    except (OSError, ValueError):  # no folder, or a config that is not ours
        return {}
    return {key.removeprefix("export_"): value for key, value in params.items() if key.startswith("export_")}


def variant_name(dtype: str, quantize: str | None) -> str:
    return quantize or dtype


def is_up_to_date(folder: Path, digest: str) -> bool:
    return export_record(folder).get("digest") == digest and (folder / "1" / "model.onnx").exists()


def routing_for(name: str, routing: RoutingFlags | None, context: int, family: str) -> dict[str, str]:
    """The engine config's pointsman.* parameters ({} without routing flags: served, not routed to)."""
    if routing is None:
        return {}
    params = routing_parameters(interface="pointsman", scores=routing.task_scores, capabilities=routing.capabilities,
                                quality_prior=routing.quality_prior, context_length=context, name=name,
                                tokens_per_second_prior=routing.tokens_per_second_prior,
                                time_to_first_token_prior=routing.time_to_first_token_prior, family=family)
    entry_from_parameters(engine_name(name), params)  # CatalogError names the key
    return params


def export_model(checkpoint: Path, name: str, repository: Path, force: bool = False,
                 console: Console | None = None, dtype: str = "float32", quantize: str | None = None,
                 routing: RoutingFlags | None = None, kv_cache: str = "inplace",
                 sampling_defaults: Mapping[str, float] | None = None) -> dict:
    """Export one checkpoint; return the stamp (parity figures included).

    dtype float16 or quantize int8 export a reduced-precision variant (export.precision).
    `routing` becomes the engine config's pointsman.* metadata, rewritten even when the
    graph is up to date; without it the model is served but the router does not route to it.
    kv_cache "concat" writes the older graph layout (the benchmark's baseline; onnx_export).
    sampling_defaults: penalties for requests that leave them out, over the checkpoint's own
    generation_config.json repetition_penalty (engine.sampling.model_defaults).
    """
    defaults = {**generation_defaults(checkpoint), **(sampling_defaults or {})}
    console = console or Console(stderr=True)
    folder = repository / engine_name(name)  # the engine; repository/name becomes its twin
    if not (checkpoint / "config.json").exists():
        raise FileNotFoundError(f"--checkpoint {checkpoint}: no config.json "
                                "(a Hugging Face checkpoint folder is expected)")
    digest = checkpoint_digest(checkpoint, f"{variant_name(dtype, quantize)}-{kv_cache}-{sorted(defaults.items())}")
    if not force and is_up_to_date(folder, digest):
        console.print(f"[green]{name}[/]: up to date, skipped")
        params = read_parameters(folder)
        set_routing_parameters(folder, routing_for(name, routing, int(params["context_length"]),
                                                   params.get("pointsman.family") or _family(checkpoint)))
        write_twin_folder(repository, name)
        return export_record(folder)

    from transformers import AutoConfig, AutoTokenizer

    from pointsman.export.onnx_export import export_decoder

    config = AutoConfig.from_pretrained(checkpoint)
    check_supported(config, checkpoint)  # before anything is written
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
        eos = end_of_sequence_ids(checkpoint, config, tokenizer)
        bos = bos_prefix(tokenizer, Path(staging) / "tokenizer.json")
        progress.update(task, advance=1, description=f"{name}: exporting ONNX and checking parity")
        (staged / "1").mkdir(parents=True)
        report = export_decoder(checkpoint, staged / "1", dtype=dtype, quantize=quantize, kv_cache=kv_cache)
        # the export's record lives in config.pbtxt: the folder holds config, graph and tokenizer only
        stamp = {
            "digest": digest, "checkpoint": str(checkpoint), "layers": str(report.layers),
            "max_abs_diff_prefill": f"{report.max_abs_diff:.3e}",
            "max_abs_diff_decode": f"{report.max_abs_diff_step:.3e}",
            "variant": report.variant, "kv_cache": report.kv_cache, "bytes": str(report.size_bytes),
            **report.quality,
        }
        spec = LlmFolderSpec(name=engine_name(name), context_length=context_length(config), eos_token_id=eos,
                             bos_token_id=bos, export_record=stamp,
                             routing=routing_for(name, routing, context_length(config), config.model_type),
                             sampling_defaults=defaults)
        write_llm_folder(staged, spec, Path(staging) / "tokenizer.json")
        if folder.exists():
            shutil.rmtree(folder)
        shutil.move(str(staged), str(folder))
        write_twin_folder(repository, name)
        progress.update(task, advance=2, description=f"{name}: done")
    console.print(f"[green]{name}[/] ({report.variant}, {report.size_bytes / 2**20:.1f} MiB): parity max "
                  f"|logit diff| prefill {report.max_abs_diff:.2e}, decode step {report.max_abs_diff_step:.2e}"
                  + "".join(f", {key} {value}" for key, value in report.quality.items()))
    return stamp
