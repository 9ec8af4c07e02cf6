"""Routing metadata as a model's config.pbtxt carries it: `pointsman.*` parameters, one plain value each.

    parameters { key: "pointsman.interface" value: { string_value: "vllm" } }
    parameters { key: "pointsman.task_score.coding" value: { string_value: "0.9" } }
    entry = entry_from_parameters("llama", {"pointsman.interface": "vllm", ...})

Keys (prefix `pointsman.`): interface (pointsman, tensorrtllm, vllm), task_score.coding,
task_score.creative, task_score.qa, task_score.reasoning (0 to 1), capabilities (comma
list of general, coding, creative, qa, reasoning), quality_prior (0 to 1), context_length
(tokens); optional: name (what callers say, default the Triton model's name),
tokens_per_second_prior, time_to_first_token_prior (seconds), family, metrics_model (the
model whose engine metrics carry this one's load).

The overlay (`pointsman_models.toml` in the repository root) gives the same keys, without
the prefix, per Triton model name; an overlay value wins over the config's value of the
same key. Every error names the model and the key.
"""

from __future__ import annotations

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (the nvcr Triton image's Python)
    import tomli as tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pointsman.errors import CatalogError
from pointsman.policy.catalog import CAPABILITIES, INTERFACES, TASKS, ModelEntry, Signature

PREFIX = "pointsman."
OVERLAY_FILE = "pointsman_models.toml"
REQUIRED = ("interface", *(f"task_score.{t}" for t in TASKS), "capabilities", "quality_prior", "context_length")
OPTIONAL = ("name", "tokens_per_second_prior", "time_to_first_token_prior", "family", "metrics_model")
KEYS = REQUIRED + OPTIONAL


def _fail(model: str, key: str, accepted: str, got: Any = None) -> CatalogError:
    suffix = "" if got is None else f" (got {got!r})"
    return CatalogError(f"model '{model}', key '{PREFIX}{key}': {accepted}{suffix}")


def _number(model: str, key: str, text: str, low: float, high: float | None) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value >= low and (high is None or value <= high)):  # also refuses nan
        span = f"from {low:g} to {high:g}" if high is not None else f"greater than {low:g}"
        raise _fail(model, key, f"must be a number {span}", text)
    return value


def _positive_int(model: str, key: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise _fail(model, key, "must be a whole number of tokens greater than 0", text)
    return value


def _capabilities(model: str, text: str) -> tuple[str, ...]:
    items = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [c for c in items if c not in CAPABILITIES]
    if not items or unknown:
        raise _fail(model, "capabilities", f"must be a comma-separated list of {', '.join(CAPABILITIES)}", text)
    return items


def routing_keys(parameters: Mapping[str, str]) -> dict[str, str]:
    """The `pointsman.*` parameters of a config, prefix stripped."""
    return {k[len(PREFIX):]: v for k, v in parameters.items() if k.startswith(PREFIX)}


def entry_from_parameters(model: str, parameters: Mapping[str, str], signature: Signature | None = None,
                          overlay: Mapping[str, str] | None = None) -> ModelEntry | None:
    """The model's catalog entry, or None when neither its config nor the overlay gives routing metadata."""
    keys = {**routing_keys(parameters), **(overlay or {})}
    if not keys:
        return None
    unknown = sorted(set(keys) - set(KEYS))
    if unknown:
        raise _fail(model, unknown[0], f"unknown key; accepted keys: {', '.join(KEYS)}")
    missing = [k for k in REQUIRED if not keys.get(k, "").strip()]
    if missing:
        raise _fail(model, missing[0], f"is required for a routable model (required: {', '.join(REQUIRED)})")
    interface = keys["interface"].strip()
    if interface not in INTERFACES:
        raise _fail(model, "interface", f"must be one of {', '.join(INTERFACES)}", interface)
    scores = {t: _number(model, f"task_score.{t}", keys[f"task_score.{t}"], 0.0, 1.0) for t in TASKS}
    optional_floats = {
        field: _number(model, field, keys[field], 0.0, None) if keys.get(field, "").strip() else None
        for field in ("tokens_per_second_prior", "time_to_first_token_prior")
    }
    if any(v == 0.0 for v in optional_floats.values()):
        zero = next(k for k, v in optional_floats.items() if v == 0.0)
        raise _fail(model, zero, "must be a number greater than 0", keys[zero])
    name = keys.get("name", "").strip() or model
    try:
        return ModelEntry(
            name=name, engine_model=model if name != model else None, interface=interface,
            family=keys.get("family", "").strip() or None, capabilities=_capabilities(model, keys["capabilities"]),
            context_length=_positive_int(model, "context_length", keys["context_length"]),
            specialization_score=scores, quality_prior=_number(model, "quality_prior", keys["quality_prior"], 0.0, 1.0),
            metrics_model=keys.get("metrics_model", "").strip() or None, signature=signature, **optional_floats,
        )
    except ValidationError as exc:  # the name's pattern is the one rule left to pydantic
        raise _fail(model, "name", "must be letters, digits, '_', '.' or '-'", name) from exc


def parse_task_scores(text: str) -> dict[str, float]:
    """`coding=0.9,creative=0.2,qa=0.5,reasoning=0.3` (export's --task-scores) -> {task: score}."""
    scores: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        task, sep, value = part.partition("=")
        task = task.strip()
        if not sep or task not in TASKS:
            raise ValueError(f"'{part}': expected TASK=SCORE with TASK one of {', '.join(TASKS)}")
        try:
            scores[task] = float(value)
        except ValueError:
            raise ValueError(f"'{part}': the score must be a number from 0 to 1") from None
        if not 0.0 <= scores[task] <= 1.0:
            raise ValueError(f"'{part}': the score must be a number from 0 to 1")
    missing = [t for t in TASKS if t not in scores]
    if missing:
        raise ValueError(f"every task needs a score; missing: {', '.join(missing)}")
    return scores


def routing_parameters(*, interface: str, scores: Mapping[str, float], capabilities: tuple[str, ...] | list[str],
                       quality_prior: float, context_length: int, name: str | None = None,
                       tokens_per_second_prior: float | None = None, time_to_first_token_prior: float | None = None,
                       family: str | None = None, metrics_model: str | None = None) -> dict[str, str]:
    """The `pointsman.*` parameters export writes into a config (plain strings, one value each)."""
    values: dict[str, Any] = {
        "interface": interface, **{f"task_score.{t}": scores[t] for t in TASKS},
        "capabilities": ",".join(capabilities), "quality_prior": quality_prior, "context_length": context_length,
        "name": name, "tokens_per_second_prior": tokens_per_second_prior,
        "time_to_first_token_prior": time_to_first_token_prior, "family": family, "metrics_model": metrics_model,
    }
    return {f"{PREFIX}{k}": f"{v:g}" if isinstance(v, float) else str(v) for k, v in values.items() if v is not None}


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in table.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            out[f"{prefix}{key}"] = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            out[f"{prefix}{key}"] = str(value).lower()
        else:
            out[f"{prefix}{key}"] = str(value)
    return out


def parse_overlay(text: str, where: str = OVERLAY_FILE) -> dict[str, dict[str, str]]:
    """{Triton model name: {key: value}} from overlay TOML: one table per model, the same keys without the prefix."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{where}: {exc}") from None
    overlay = {}
    for model, table in data.items():
        if not isinstance(table, Mapping):
            raise CatalogError(f"{where}: '{model}' must be a table of routing keys ([{model}] then key = value lines)")
        keys = {k.removeprefix(PREFIX): v for k, v in _flatten(table).items()}
        unknown = sorted(set(keys) - set(KEYS))
        if unknown:
            raise CatalogError(f"{where}: model '{model}', key '{unknown[0]}': unknown key; "
                               f"accepted keys: {', '.join(KEYS)}")
        overlay[model] = keys
    return overlay


def load_overlay(path: Path) -> dict[str, dict[str, str]]:
    """The overlay file's tables ({} when there is no file)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CatalogError(f"{path}: {exc}") from None
    return parse_overlay(text, str(path))
