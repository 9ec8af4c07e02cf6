"""Operator commands: A/B experiments and usage analytics.

    pointsman experiments create creative-ab --task creative --arm gpt2=model:gpt2:50 --arm distil=model:distilgpt2:50
    pointsman experiments report creative-ab
    pointsman usage --window 3600
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def add_ops_commands(subparsers: argparse._SubParsersAction, common: Callable, guarded: Callable) -> None:
    """Register `experiments` and `usage` (common: shared --url/--protocol args; guarded: error handling)."""
    exp = subparsers.add_parser("experiments",
                                help="A/B experiments: create, pause, resume, stop, list, report, feedback")
    actions = exp.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every experiment with its status and requests per arm")
    create = actions.add_parser("create", help="start an experiment (from --file, or from the flags)")
    create.add_argument("name", nargs="?")
    create.add_argument("--file", type=Path, help="a TOML or JSON file holding one experiment")
    create.add_argument("--task", action="append", help="only prompts of this task (repeatable)")
    create.add_argument("--arm", action="append", metavar="NAME=model:MODEL:WEIGHT|NAME=policy:POLICY:WEIGHT",
                        help="an arm: a model or a prompt-analysis policy (lexical, classifier), with a weight")
    create.add_argument("--metric", help="primary metric (duration_s, ttft_s, tokens_per_s, feedback, "
                                         "error_rate)")
    create.add_argument("--min-samples", type=int, help="per arm, before any verdict")
    create.add_argument("--max-samples", type=int, help="per arm, then stop with the verdict so far")
    for action in ("pause", "resume", "stop", "report"):
        sub = actions.add_parser(action, help=f"{action} an experiment")
        sub.add_argument("name")
    feedback = actions.add_parser("feedback", help="score a past response by its request_id")
    feedback.add_argument("request_id")
    feedback.add_argument("score", type=float)
    for sub in actions.choices.values():
        common(sub)
    exp.set_defaults(func=guarded(_experiments))

    usage = subparsers.add_parser("usage", help="usage analytics and optimisation suggestions")
    usage.add_argument("--window", type=float, metavar="SECONDS", help="only the last SECONDS (default: all)")
    common(usage)
    usage.set_defaults(func=guarded(_usage))


def parse_arm(text: str) -> dict[str, Any]:
    """'distil=model:distilgpt2:50' -> {"name": "distil", "model": "distilgpt2", "weight": 50.0}."""
    try:
        name, spec = text.split("=", 1)
        kind, target, weight = spec.split(":")
        if kind not in ("model", "policy"):
            raise ValueError
        return {"name": name, kind: target, "weight": float(weight)}
    except ValueError:
        raise ValueError(f"--arm {text!r}: expected NAME=model:MODEL:WEIGHT or NAME=policy:POLICY:WEIGHT") from None


def experiment_from_args(args: argparse.Namespace) -> dict[str, Any]:
    if args.file:
        text = args.file.read_text()
        spec = json.loads(text) if args.file.suffix == ".json" else tomllib.loads(text)
        spec = spec.get("experiments", [spec])[0] if "experiments" in spec else spec
        if args.name:
            spec["name"] = args.name
        return spec
    if not args.name or not args.arm:
        raise ValueError("create needs a name and at least two --arm (or --file)")
    spec: dict[str, Any] = {"name": args.name, "arms": [parse_arm(a) for a in args.arm]}
    if args.task:
        spec["filter"] = {"task": args.task}
    stopping = {k: v for k, v in (("metric", args.metric), ("min_samples_per_arm", args.min_samples),
                                  ("max_samples_per_arm", args.max_samples)) if v is not None}
    if stopping:
        spec["stopping"] = stopping
    return spec


def _payload(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.action == "list":
        return None
    if args.action == "create":
        return experiment_from_args(args)
    if args.action == "feedback":
        return {"request_id": args.request_id, "score": args.score}
    return {"name": args.name}


def _experiments(args: argparse.Namespace) -> int:
    from pointsman.client.cli import _client, _console, _print_json

    with _client(args) as client:
        result = client.experiments(args.action, _payload(args))
    if args.json or args.action not in ("report", "list"):
        _print_json(result)
    elif args.action == "report":
        _console().print(report_table(result))
    else:
        for e in result.get("experiments", []):
            arms = ", ".join(f"{a['name']} ({a['requests']} requests)" for a in e.get("arms", []))
            print(f"{e['name']}: {e['status']} - {arms}", flush=True)  # noqa: T201
    return 0


def report_table(report: dict[str, Any]) -> Any:
    """Per-arm means with 95% intervals, then the comparisons and the stopping decision."""
    from rich.table import Table

    decision = report.get("decision", {})
    table = Table(title=f"experiment {report.get('name')}: {decision.get('state', '?')}",
                  caption=decision.get("reason") or json.dumps(decision))
    table.add_column("arm")
    table.add_column("requests", justify="right")
    table.add_column("errors", justify="right")
    metrics = sorted({m for arm in report.get("arms", []) for m in arm.get("metrics", {})})
    for metric in metrics:
        table.add_column(f"{metric} mean [95% CI]", justify="right")
    for arm in report.get("arms", []):
        cells = []
        for metric in metrics:
            m = arm.get("metrics", {}).get(metric) or {}
            mean, low, high = m.get("mean"), m.get("ci_low"), m.get("ci_high")
            cells.append("-" if mean is None else f"{mean:.4g} [{_g(low)}, {_g(high)}]")
        table.add_row(str(arm.get("name")), str(arm.get("requests", 0)), str(arm.get("errors", 0)), *cells)
    return table


def _g(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def _usage(args: argparse.Namespace) -> int:
    from pointsman.client.cli import _client, _print_json

    with _client(args) as client:
        summary = client.usage(args.window)
    if args.json:
        _print_json(summary)
        return 0
    for suggestion in summary.get("suggestions", []):
        print(f"suggestion: {suggestion.get('message')}", flush=True)  # noqa: T201
    _print_json({k: v for k, v in summary.items() if k != "suggestions"})
    return 0
