"""The client commands of `pointsman`: infer, recommend, models.

    pointsman infer "def add(a, b):" --prefer codegen --fallback fastest --stream
    pointsman models --protocol grpc

pointsman.launcher.cli calls add_client_commands(subparsers). Server errors are printed as
one line on stderr with exit code 1; bad arguments exit with 2; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from typing import Any

from pointsman.client.request import DEFAULT_TIMEOUT_S, DEFAULT_URLS, FALLBACK_MODES, PROTOCOLS

SERVER_ERROR_EXIT = 1
USAGE_ERROR_EXIT = 2
INTERRUPTED_EXIT = 130


def add_client_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register infer, recommend and models on the `pointsman` parser."""
    infer = subparsers.add_parser("infer", help="generate text through the router (or one model directly)",
                                  description="Generate text. Without --model, --auto or --prefer the router "
                                              "chooses (auto).")
    infer.add_argument("prompt")
    selection = infer.add_mutually_exclusive_group()
    selection.add_argument("--model", help="manual: exactly this model")
    selection.add_argument("--auto", action="store_true", help="auto: let the router choose")
    selection.add_argument("--prefer", metavar="MODEL", help="hybrid: this model if it is ready, else --fallback")
    infer.add_argument("--fallback", choices=FALLBACK_MODES, help="hybrid fallback strategy (default auto)")
    infer.add_argument("--direct", action="store_true", help="call --model itself, skipping the router")
    infer.add_argument("--stream", action="store_true", help="print the text as it is generated")
    infer.add_argument("--max-tokens", type=int, default=20, metavar="N")
    infer.add_argument("--temperature", type=float, help="0 or absent: greedy")
    infer.add_argument("--top-k", type=int)
    infer.add_argument("--top-p", type=float)
    infer.add_argument("--seed", type=int)
    infer.add_argument("--ignore-eos", action="store_true")
    infer.add_argument("--repetition-penalty", type=float, metavar="P", help="> 0; 1 is off")
    infer.add_argument("--presence-penalty", type=float, metavar="P", help="-2 to 2 (OpenAI's)")
    infer.add_argument("--frequency-penalty", type=float, metavar="P", help="-2 to 2 (OpenAI's)")
    infer.add_argument("--stop", action="append", metavar="TEXT", help="end at this text (repeatable)")
    infer.add_argument("--min-tokens", type=int, metavar="N", help="no end-of-sequence before N tokens")
    _requirement_args(infer)
    infer.add_argument("--user", help="who is asking (passed to the router)")
    _common_args(infer)
    infer.set_defaults(func=_guarded(_infer))

    recommend = subparsers.add_parser("recommend", help="which model auto-selection would pick, and why")
    recommend.add_argument("prompt")
    recommend.add_argument("--max-tokens", type=int, metavar="N")
    _requirement_args(recommend)
    _common_args(recommend)
    recommend.set_defaults(func=_guarded(_recommend))

    models = subparsers.add_parser("models", help="served models: metadata and live status")
    models.add_argument("--model", help="only this model")
    _common_args(models)
    models.set_defaults(func=_guarded(_models))

    from pointsman.client.ops_cli import add_ops_commands

    add_ops_commands(subparsers, _common_args, _guarded)


def _requirement_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-response-time", type=float, metavar="S", help="seconds the answer may take")
    parser.add_argument("--min-quality", type=float, metavar="Q", help="lowest acceptable quality, 0-1")
    parser.add_argument("--prefer-speed", action="store_true", help="favour fast models")


def _common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help=f"Triton host:port (default {DEFAULT_URLS['http']} for http, "
                                      f"{DEFAULT_URLS['grpc']} for grpc)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="http")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S")
    parser.add_argument("--json", action="store_true", help="print the full answer as JSON")


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run a command; its failures become one line on stderr and an exit code."""

    def run(args: argparse.Namespace) -> int:
        from pointsman.client.types import PointsmanClientError

        try:
            return command(args)
        except PointsmanClientError as exc:
            return _fail(args, exc, SERVER_ERROR_EXIT)
        except ValueError as exc:  # the client refused the arguments before sending anything
            return _fail(args, exc, USAGE_ERROR_EXIT)
        except KeyboardInterrupt:
            print(file=sys.stderr)  # noqa: T201
            return INTERRUPTED_EXIT
        except BrokenPipeError:  # `pointsman infer ... | head`
            return 0

    return run


def _fail(args: argparse.Namespace, exc: Exception, code: int) -> int:
    print(f"pointsman {args.command}: error: {exc}", file=sys.stderr, flush=True)  # noqa: T201
    return code


def _client(args: argparse.Namespace):
    from pointsman.client.sync import PointsmanClient

    return PointsmanClient(args.url, args.protocol, timeout=args.timeout)


def generate_options(args: argparse.Namespace) -> dict[str, Any]:
    """Parsed `infer` arguments -> keyword arguments of PointsmanClient.generate."""
    if args.fallback and not args.prefer:
        raise ValueError("--fallback applies to a preferred model: add --prefer MODEL")
    options = {"model": args.model, "auto": args.auto, "prefer": args.prefer, "fallback": args.fallback or "auto",
               "direct": args.direct, "max_tokens": args.max_tokens, "temperature": args.temperature,
               "top_k": args.top_k, "top_p": args.top_p, "seed": args.seed, "ignore_eos": args.ignore_eos,
               "repetition_penalty": args.repetition_penalty, "presence_penalty": args.presence_penalty,
               "frequency_penalty": args.frequency_penalty, "stop": args.stop, "min_tokens": args.min_tokens,
               "max_response_time": args.max_response_time, "min_quality": args.min_quality,
               "prefer_speed": args.prefer_speed, "user": args.user}
    if args.direct and not args.model:
        raise ValueError("--direct calls one model: add --model MODEL")
    return options


def _infer(args: argparse.Namespace) -> int:
    options = generate_options(args)
    with _client(args) as client:
        if not args.stream:
            response = client.generate(args.prompt, **options)
            if not args.json:
                print(response.text, flush=True)  # noqa: T201
        else:
            stream = client.stream(args.prompt, **options)
            with stream:
                for piece in stream:
                    if not args.json:
                        print(piece, end="", flush=True)  # noqa: T201
            response = stream.response
            if not args.json:
                print(flush=True)  # noqa: T201
    if args.json:
        _print_json(response.to_dict())
    else:
        _note(describe_generation(response.to_dict()))
    return 0


def describe_generation(response: Mapping[str, Any]) -> str:
    """One line on how a generation was served, for stderr."""
    parts = [response.get("selected_model") or "?"]
    if response.get("selection_mode"):
        parts.append(str(response["selection_mode"]))
    if response.get("fallback_used"):
        parts.append("fallback")
    if response.get("task"):
        parts.append(f"task {response['task']}")
    if response.get("tokens") is not None:
        parts.append(f"{response['tokens']} tokens")
    if response.get("finish_reason"):
        parts.append(str(response["finish_reason"]))
    if response.get("selection_ms") is not None:
        parts.append(f"selection {response['selection_ms']:.2f} ms")
    if response.get("latency_ms") is not None:
        parts.append(f"{response['latency_ms']:.0f} ms")
    line = " | ".join(parts)
    return f"{line} | {response['selection_reason']}" if response.get("selection_reason") else line


def _recommend(args: argparse.Namespace) -> int:
    with _client(args) as client:
        advice = client.recommend(args.prompt, max_tokens=args.max_tokens, max_response_time=args.max_response_time,
                                  min_quality=args.min_quality, prefer_speed=args.prefer_speed)
    if args.json:
        _print_json(advice.to_dict())
        return 0
    task = f"  (task: {advice.task})" if advice.task else ""
    lines = [f"{advice.recommended_model}  confidence {advice.confidence:.2f}{task}", f"reasoning: {advice.reasoning}"]
    if advice.alternatives:
        lines.append("alternatives: " + ", ".join(f"{a.model} {a.score:.2f}" for a in advice.alternatives))
    print("\n".join(lines), flush=True)  # noqa: T201
    return 0


def _models(args: argparse.Namespace) -> int:
    with _client(args) as client:
        models = client.models(args.model)
    if args.json:
        _print_json([m.to_dict() for m in models])
        return 0
    _console().print(models_table(models))
    return 0


def _console():
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # piped or captured: rich would assume 80 columns and fold every cell
        console = Console(width=160)
    return console


def models_table(models: list) -> Any:
    """A rich Table of ModelInfo rows: catalog metadata and live status."""
    from rich.table import Table

    from_repository = any(m.source == "repository" for m in models)
    caption = "no catalog model on this server: Triton's repository index and statistics" if from_repository else None
    table = Table(title="Pointsman models", caption=caption, show_lines=True)
    for column in ("model", "loaded", "capabilities", "specialization", "performance", "status"):
        table.add_column(column, overflow="fold")
    for m in models:
        status = {k: v for k, v in m.current_status.items() if k != "loaded"}
        table.add_row(m.model_name, "yes" if m.loaded else "no", ", ".join(m.capabilities) or "-",
                      _pairs(m.specialization_score), _pairs(m.performance_metrics), _pairs(status))
    return table


def _pairs(values: Mapping[str, Any]) -> str:
    return "\n".join(f"{k}: {_fmt(v)}" for k, v in values.items()) or "-"


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return "-" if value is None else str(value)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2), flush=True)  # noqa: T201


def _note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)  # noqa: T201
