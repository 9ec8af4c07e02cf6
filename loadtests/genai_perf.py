"""genai-perf against Pointsman, from its own virtualenv: gpt2 direct and the router side by side.

    .venv/bin/python -m pointsman.loadtests.genai_perf --setup-only                    # once: venv + perf_analyzer
    .venv/bin/python -m pointsman.loadtests.genai_perf --url 127.0.0.1:8001 --targets direct,manual,auto,hybrid
    .venv/bin/python -m pointsman.loadtests.genai_perf --url 127.0.0.1:8001 --streaming

genai-perf lives in .pointsman/genai-perf-venv, never in the project's venv (it pulls
numpy 2, which breaks the Python backend stub). Version 0.0.16 is pinned and used as
published: `--endpoint-type kserve --backend tensorrtllm` (0.0.16's spelling of the
older `--service-kind triton`; it passes `--service-kind triton` to perf_analyzer itself)
with `--output-tokens-mean-deterministic`. What it sends per request (its inputs.json):
text_input, max_tokens, exclude_input_in_output, min_length, and stream with
--streaming, every one a declared input of our models. Without --streaming it calls
`router` / `gpt2` (the non-decoupled twins), with --streaming `router_stream` /
`gpt2_stream`. It drives the perf_analyzer 2.51 binary that loadtests.perf_analyzer sets
up (from PATH). One thing 0.0.16 and that binary disagree on: every inputs.json row
carries a top-level "model": "<-m value>" label, which perf_analyzer 2.51 reads as the
router's `model` input and stops ("Input data file is malformed"). A perf_analyzer shim,
first on PATH, drops that label string before running the real binary; a `model` given
with --extra-inputs (a list) stays, so manual routing still names its model. genai-perf
itself is unchanged. See loadtests/genai_perf.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from pointsman.loadtests.perf_analyzer import ROOT, TOOLS_DIR, PerfAnalyzerError, ensure_perf_analyzer
from pointsman.policy.contract import stream_model

LOGGER = logging.getLogger(__name__)

GENAI_PERF_VERSION = "0.0.16"
VENV = ROOT / ".pointsman" / "genai-perf-venv"
ARTIFACTS = ROOT / ".pointsman" / "genai-perf"
DEFAULT_TOKENIZER = ROOT / "build" / "checkpoints" / "gpt2"

# target -> (Triton model, extra inputs); {model} is the language model under test
TARGETS = {
    "direct": (None, []),
    "manual": ("router", ["model:{model}"]),
    "auto": ("router", ["auto_select:true"]),
    "hybrid": ("router", ["preferred_model:{model}"]),
}

SHIM = '''#!{python}
"""perf_analyzer as genai-perf {version} calls it, minus the "model" string its inputs.json rows carry.

Written by loadtests/genai_perf.py; the real binary: {binary}
"""
import json
import os
import sys

REAL = {binary!r}
args = sys.argv[1:]
if "--input-data" in args:
    path = args[args.index("--input-data") + 1]
    with open(path) as handle:
        data = json.load(handle)
    for row in data.get("data", []):
        if isinstance(row.get("model"), str):  # genai-perf's label, not the router's `model` tensor
            del row["model"]
    with open(path, "w") as handle:
        json.dump(data, handle)
os.execv(REAL, [REAL, *args])
'''


class GenaiPerfError(RuntimeError):
    """genai-perf could not be set up or a run failed."""


def ensure_venv(venv: Path = VENV, version: str = GENAI_PERF_VERSION) -> Path:
    """The genai-perf executable of its own virtualenv, created and installed once."""
    executable = venv / "bin" / "genai-perf"
    if executable.exists() and _installed_version(venv) == version:
        return executable
    if not (venv / "bin" / "python").exists():
        base = getattr(sys, "_base_executable", sys.executable)  # not this venv's python: a clean one
        LOGGER.info("creating %s", venv)
        _check(subprocess.run([base, "-m", "venv", str(venv)], capture_output=True, text=True), "python -m venv")
    LOGGER.info("installing genai-perf==%s into %s (a few minutes)", version, venv)
    _check(subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"genai-perf=={version}"],
                          capture_output=True, text=True), f"pip install genai-perf=={version}")
    return executable


def _installed_version(venv: Path) -> str | None:
    done = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import importlib.metadata as m; print(m.version('genai-perf'))"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or None


def _check(done: subprocess.CompletedProcess, what: str) -> None:
    if done.returncode != 0:
        raise GenaiPerfError(f"{what} failed: {(done.stderr or done.stdout).strip()[-400:]}")


def write_shim(shim_dir: Path, python: Path, binary: Path) -> Path:
    """A `perf_analyzer` for genai-perf's PATH that fixes its inputs.json, then runs the real binary."""
    shim_dir.mkdir(parents=True, exist_ok=True)
    shim = shim_dir / "perf_analyzer"
    shim.write_text(SHIM.format(python=python, version=GENAI_PERF_VERSION, binary=str(binary)))
    shim.chmod(0o755)
    return shim


@dataclass(frozen=True)
class GenaiPerfResult:
    """One genai-perf profile, the figures that compare targets."""

    target: str
    model: str
    concurrency: int
    request_throughput: float
    output_token_throughput: float
    request_latency_p50_ms: float
    request_latency_p99_ms: float
    ttft_p50_ms: float | None
    ttft_p99_ms: float | None
    itl_p50_ms: float | None
    output_tokens_avg: float

    @classmethod
    def from_export(cls, target: str, model: str, concurrency: int, export: dict) -> GenaiPerfResult:
        def stat(metric: str, key: str) -> float | None:
            value = export.get(metric, {}).get(key)
            return None if value is None else float(value)

        return cls(target=target, model=model, concurrency=concurrency,
                   request_throughput=stat("request_throughput", "avg") or 0.0,
                   output_token_throughput=stat("output_token_throughput", "avg") or 0.0,
                   request_latency_p50_ms=stat("request_latency", "p50") or 0.0,
                   request_latency_p99_ms=stat("request_latency", "p99") or 0.0,
                   ttft_p50_ms=stat("time_to_first_token", "p50"), ttft_p99_ms=stat("time_to_first_token", "p99"),
                   itl_p50_ms=stat("inter_token_latency", "p50"),
                   output_tokens_avg=stat("output_sequence_length", "avg") or 0.0)


def served_model(target: str, model: str, streaming: bool) -> str:
    """The Triton model a target calls: the twin (router, gpt2), or with streaming its _stream model."""
    served = TARGETS[target][0] or model
    return stream_model(served) if streaming else served


def profile_command(executable: Path, *, target: str, model: str, url: str, concurrency: int, tokenizer: Path,
                    num_prompts: int, input_tokens: int, output_tokens: int, measurement_ms: int,
                    artifact_dir: Path, streaming: bool = False) -> list[str]:
    """The genai-perf command line for one target (pure: tested without genai-perf)."""
    command = [str(executable), "profile", "-m", served_model(target, model, streaming),
               "--endpoint-type", "kserve", "--backend", "tensorrtllm", "-u", url, "--tokenizer", str(tokenizer),
               "--num-dataset-entries", str(num_prompts), "--synthetic-input-tokens-mean", str(input_tokens),
               "--synthetic-input-tokens-stddev", "0", "--output-tokens-mean", str(output_tokens),
               # every request generates exactly output_tokens: genai-perf sends min_length = max_tokens
               "--output-tokens-mean-deterministic", "--concurrency", str(concurrency),
               "--measurement-interval", str(measurement_ms), "--artifact-dir", str(artifact_dir)]
    for extra in TARGETS[target][1]:
        command += ["--extra-inputs", extra.format(model=model)]
    if streaming:
        command.append("--streaming")  # genai-perf adds stream: true; only the _stream models stream
    return command


def run_profile(executable: Path, env: dict[str, str], *, target: str, model: str, concurrency: int,
                timeout: float, streaming: bool = False, **options) -> GenaiPerfResult:
    artifact_dir = ARTIFACTS / f"{target}-{model}-c{concurrency}{'-streaming' if streaming else ''}"
    command = profile_command(executable, target=target, model=model, concurrency=concurrency,
                              artifact_dir=artifact_dir, streaming=streaming, **options)
    LOGGER.info("genai-perf %s: %s", target, " ".join(command[1:]))
    for attempt in (1, 2):
        try:
            done = subprocess.run(command, env=env, cwd=ARTIFACTS, capture_output=True, text=True, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise GenaiPerfError(f"genai-perf {target} ran past {timeout:.0f}s") from None
        # seen here now and then: perf_analyzer 2.51 leaves profile_export.json cut short, which genai-perf
        # cannot parse; a second run has always completed
        if done.returncode == 0 or "JSONDecodeError" not in done.stdout + done.stderr or attempt == 2:
            break
        LOGGER.warning("genai-perf %s: profile_export.json was cut short; running it again", target)
    if done.returncode != 0:
        tail = " ".join((done.stdout + done.stderr).strip().splitlines()[-4:])
        raise GenaiPerfError(f"genai-perf {target} exited with {done.returncode}: {tail[-600:]}")
    exports = sorted(artifact_dir.rglob("profile_export_genai_perf.json"), key=lambda p: p.stat().st_mtime)
    if not exports:
        raise GenaiPerfError(f"genai-perf {target} wrote no profile_export_genai_perf.json under {artifact_dir}")
    served = served_model(target, model, streaming)
    return GenaiPerfResult.from_export(target, served, concurrency, json.loads(exports[-1].read_text()))


def results_table(results: Sequence[GenaiPerfResult]):
    from rich.table import Table

    direct = {r.concurrency: r for r in results if r.target == "direct"}
    table = Table(title="genai-perf: the router against the model called directly (p50 unless said)")
    for column in ("target", "conc.", "req/s", "out tok/s", "latency ms", "latency p99", "TTFT ms", "ITL ms",
                   "latency x direct", "tok/s x direct"):
        table.add_column(column, justify="left" if column == "target" else "right")

    def num(value: float | None, fmt: str = ".1f") -> str:
        return "-" if value is None else format(value, fmt)

    for r in results:
        base = direct.get(r.concurrency)
        ratio_latency = r.request_latency_p50_ms / base.request_latency_p50_ms if base and r is not base else None
        ratio_tokens = r.output_token_throughput / base.output_token_throughput if base and r is not base else None
        table.add_row(f"{r.target} ({r.model})", str(r.concurrency), num(r.request_throughput),
                      num(r.output_token_throughput, ".0f"), num(r.request_latency_p50_ms),
                      num(r.request_latency_p99_ms), num(r.ttft_p50_ms), num(r.itl_p50_ms, ".2f"),
                      num(ratio_latency, ".2f"), num(ratio_tokens, ".2f"))
    return table


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pointsman.loadtests.genai_perf",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="127.0.0.1:8001", help="Triton gRPC host:port")
    parser.add_argument("--model", default="gpt2", help="the language model called directly and named to the router")
    parser.add_argument("--targets", default="direct,manual", help=f"comma-separated, of {', '.join(TARGETS)}")
    parser.add_argument("--concurrency", default="2", help="comma-separated concurrency levels")
    parser.add_argument("--tokenizer", type=Path, default=DEFAULT_TOKENIZER,
                        help="a local Hugging Face tokenizer folder (no hub here)")
    parser.add_argument("--num-prompts", type=int, default=50)
    parser.add_argument("--input-tokens", type=int, default=32)
    parser.add_argument("--output-tokens", type=int, default=16)
    parser.add_argument("--measurement-ms", type=int, default=4000, help="perf_analyzer measurement window")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one genai-perf run may take")
    parser.add_argument("--streaming", action="store_true",
                        help="genai-perf --streaming, against router_stream and <model>_stream")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--setup-only", action="store_true", help="create the venv and perf_analyzer, then stop")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not targets or any(t not in TARGETS for t in targets):
        print(f"genai_perf: --targets takes {', '.join(TARGETS)}; got {args.targets!r}", file=sys.stderr)  # noqa: T201
        return 2
    try:
        executable = ensure_venv()
        tool = ensure_perf_analyzer(TOOLS_DIR)
        shim = write_shim(TOOLS_DIR / "genai-perf-shim", VENV / "bin" / "python", tool.binary)
        if args.setup_only:
            print(executable)  # noqa: T201
            return 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        env = tool.env()
        env["PATH"] = os.pathsep.join([str(shim.parent), str(VENV / "bin"), env.get("PATH", "")])
        env["HF_HUB_OFFLINE"] = "1"  # the tokenizer is a local folder; nothing to fetch
        results = [run_profile(executable, env, target=target, model=args.model, concurrency=int(c), url=args.url,
                               tokenizer=args.tokenizer.resolve(), num_prompts=args.num_prompts,
                               input_tokens=args.input_tokens, output_tokens=args.output_tokens,
                               measurement_ms=args.measurement_ms, timeout=args.timeout, streaming=args.streaming)
                   for c in args.concurrency.split(",") if c.strip() for target in targets]
    except (GenaiPerfError, PerfAnalyzerError) as exc:
        print(f"genai_perf: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    from rich.console import Console

    console = Console()
    (console if console.is_terminal else Console(width=150)).print(results_table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
