"""Router against direct with Triton's perf_analyzer: latency p50/p99, throughput and the router hop.

    .venv/bin/python -m pointsman.loadtests.perf_analyzer --url 127.0.0.1:8001
    .venv/bin/python -m pointsman.loadtests.perf_analyzer --url 127.0.0.1:8001 \
        --concurrency 1,4 --modes direct,manual,auto --transports streaming,unary

perf_analyzer comes from the tritonclient 2.51.0 wheel: the PyPI `perf-analyzer` package
is an empty placeholder and the binaries of newer tritonclient wheels need a newer glibc
than this machine's. The wheel is downloaded once (`pip download`) into
.pointsman/tools/, the binary extracted, and the libraries it lacks (libb64, libcudart)
resolved from nvidia_pytriton.libs through symlinks named as the binary asks.

Two transports: `streaming` drives the decoupled `router_stream` and `<model>_stream` over
gRPC with --streaming (with stream false each request has one response, so the latency
of that "first response" is the whole request); `unary` drives their non-decoupled twins
`router` and `<model>` with plain ModelInfer calls, no --streaming. Every request generates exactly
max_tokens tokens (ignore_eos), so both sides do the same work. Modes run interleaved,
round after round, and the hop is the median over rounds of (router p50 - direct p50)
from the same round, which cancels most of the drift of a shared machine. The hop is
reported only for modes whose requests reach the model called directly (manual and
hybrid name it): auto may choose another model, so its difference from direct is the
choice plus the hop, and the table leaves its hop column empty (its ratios stay, labelled).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from pointsman.policy.contract import stream_model

LOGGER = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
INPUTS = Path(__file__).resolve().with_name("perf_inputs")
TOOLS_DIR = ROOT / ".pointsman" / "tools"
WHEEL_VERSION = "2.51.0"
WHEEL_BINARY = f"tritonclient-{WHEEL_VERSION}.data/data/bin/perf_analyzer"

# mode -> (Triton model, input data file); direct calls the language model itself
MODES = {
    "direct": (None, "gpt2_direct.json"),
    "manual": ("router", "router_manual_gpt2.json"),
    "hybrid": ("router", "router_hybrid_gpt2.json"),
    "auto": ("router", "router_auto.json"),
}
SAME_MODEL_MODES = ("manual", "hybrid")  # requests that land on the directly called model: like with like


TRANSPORTS = ("streaming", "unary")


class PerfAnalyzerError(RuntimeError):
    """perf_analyzer could not be set up or a run failed."""


# -- the binary ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PerfAnalyzer:
    binary: Path
    lib_dir: Path

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(self.lib_dir), env.get("LD_LIBRARY_PATH")) if p)
        return env

    def run(self, args: Sequence[str], timeout: float) -> str:
        try:
            done = subprocess.run([str(self.binary), *args], env=self.env(), capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise PerfAnalyzerError(f"perf_analyzer ran past {timeout:.0f}s: {' '.join(args)}") from None
        if done.returncode != 0:
            tail = " ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
            raise PerfAnalyzerError(f"perf_analyzer exited with {done.returncode}: {tail}")
        return done.stdout + done.stderr


def bundled_libs() -> Path:
    """nvidia_pytriton.libs: the wheel's vendored libraries (libb64, libcudart, ...)."""
    from pointsman.launcher.tritonserver import pytriton_root

    libs = pytriton_root().parent.parent / "nvidia_pytriton.libs"
    if not libs.is_dir():
        raise PerfAnalyzerError(f"{libs} is missing: perf_analyzer's libb64 and libcudart come from nvidia-pytriton")
    return libs


def missing_libraries(binary: Path, lib_dir: Path) -> list[str]:
    """The sonames ldd cannot resolve for the binary, with lib_dir on the search path."""
    env = dict(os.environ, LD_LIBRARY_PATH=str(lib_dir))
    out = subprocess.run(["ldd", str(binary)], env=env, capture_output=True, text=True, check=False).stdout
    return [line.split("=>")[0].strip() for line in out.splitlines() if "not found" in line]


def find_vendored(soname: str, libs: Path) -> Path | None:
    """libb64.so.0d -> libs/libb64-98cb6333.so.0d (auditwheel renames with a hash, keeps the version)."""
    stem, _, version = soname.partition(".so")
    for candidate in sorted(libs.iterdir()):
        name = candidate.name
        if name.startswith(f"{stem}-") and f".so{version}" in name:
            return candidate
    return None


def link_libraries(binary: Path, lib_dir: Path, libs: Path) -> None:
    """Symlink each missing soname to its vendored copy; fail naming what is still missing."""
    lib_dir.mkdir(parents=True, exist_ok=True)
    missing = missing_libraries(binary, lib_dir)
    unresolved = []
    for soname in missing:
        source = find_vendored(soname, libs)
        if source is None:
            unresolved.append(soname)
            continue
        link = lib_dir / soname
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source)
    still = missing_libraries(binary, lib_dir)
    if unresolved or still:
        raise PerfAnalyzerError(f"perf_analyzer needs {', '.join(sorted(set(unresolved + still)))}, "
                                f"found neither on the system nor in {libs}")


def ensure_perf_analyzer(tools_dir: Path = TOOLS_DIR) -> PerfAnalyzer:
    """The perf_analyzer of the tritonclient 2.51.0 wheel, downloaded and set up once."""
    home = tools_dir / f"perf_analyzer-{WHEEL_VERSION}"
    binary, lib_dir = home / "perf_analyzer", home / "lib"
    if not binary.exists():
        wheel = _download_wheel(tools_dir / "wheels")
        home.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as archive, tempfile.NamedTemporaryFile(dir=home, delete=False) as out:
            out.write(archive.read(WHEEL_BINARY))
        os.chmod(out.name, 0o755)
        os.replace(out.name, binary)  # atomic: a half-written binary is never found
    link_libraries(binary, lib_dir, bundled_libs())
    tool = PerfAnalyzer(binary, lib_dir)
    version = tool.run(["--version"], timeout=30).strip()
    LOGGER.info("%s (%s)", version, binary)
    return tool


def _download_wheel(wheels: Path) -> Path:
    found = sorted(wheels.glob(f"tritonclient-{WHEEL_VERSION}-*.whl"))
    if found:
        return found[0]
    wheels.mkdir(parents=True, exist_ok=True)
    LOGGER.info("downloading tritonclient==%s (for its perf_analyzer) into %s", WHEEL_VERSION, wheels)
    done = subprocess.run([sys.executable, "-m", "pip", "download", f"tritonclient=={WHEEL_VERSION}", "--no-deps",
                           "-d", str(wheels), "-q"],
                          capture_output=True, text=True, check=False)
    found = sorted(wheels.glob(f"tritonclient-{WHEEL_VERSION}-*.whl"))
    if done.returncode != 0 or not found:
        raise PerfAnalyzerError(f"pip download tritonclient=={WHEEL_VERSION} failed: {done.stderr.strip()[-300:]}")
    return found[0]


# -- measuring ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """One perf_analyzer run: one mode at one concurrency."""

    mode: str
    model: str
    concurrency: int
    round: int
    throughput: float  # requests/s
    p50_ms: float
    p90_ms: float
    p99_ms: float
    transport: str = "streaming"  # or "unary" (the non-decoupled twins, no --streaming)


def input_data(mode: str, model: str, max_tokens: int | None, folder: Path) -> Path:
    """The mode's input file from perf_inputs/, rewritten when the model or max_tokens differ."""
    source = INPUTS / MODES[mode][1]
    data = json.loads(source.read_text())
    changed = False
    for row in data["data"]:
        for key in ("model", "preferred_model"):
            if key in row and row[key] != [model]:
                row[key], changed = [model], True
        if max_tokens is not None and row.get("max_tokens") != [max_tokens]:
            row["max_tokens"], changed = [max_tokens], True
    if not changed:
        return source
    target = folder / f"{mode}.json"
    target.write_text(json.dumps(data))
    return target


def parse_csv(path: Path) -> dict[str, float]:
    """perf_analyzer's -f report (one row per concurrency) -> the first row, numbers as floats."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise PerfAnalyzerError(f"perf_analyzer wrote no measurement to {path}")
    return {k: float(v) for k, v in rows[0].items() if k and v not in (None, "")}


def perf_command(*, target: str, url: str, transport: str, data: Path, concurrency: int, request_count: int,
                 report: Path) -> list[str]:
    """perf_analyzer's arguments; `streaming` calls <target>_stream with --streaming, `unary` <target> without."""
    model, streaming = (stream_model(target), ["--streaming"]) if transport == "streaming" else (target, [])
    return ["-m", model, "-i", "grpc", "-u", url, *streaming, "--async", "--input-data", str(data),
            "--concurrency-range", str(concurrency), "--measurement-mode", "count_windows",
            "--measurement-request-count", str(request_count),
            # our own rounds judge stability; perf_analyzer only needs to finish (999: any spread, as genai-perf sets)
            "--stability-percentage", "999", "--max-trials", "6", "-f", str(report)]


def measure(tool: PerfAnalyzer, *, url: str, mode: str, model: str, concurrency: int, round_: int,
            request_count: int, max_tokens: int | None, workdir: Path, timeout: float,
            transport: str = "streaming") -> Measurement:
    target = MODES[mode][0] or model
    report = workdir / f"{transport}-{mode}-c{concurrency}-r{round_}.csv"
    command = perf_command(target=target, url=url, transport=transport,
                           data=input_data(mode, model, max_tokens, workdir), concurrency=concurrency,
                           request_count=request_count, report=report)
    LOGGER.info("perf_analyzer %s", " ".join(command))
    tool.run(command, timeout=timeout)
    row = parse_csv(report)
    return Measurement(mode=mode, model=command[1], concurrency=concurrency, round=round_,
                       throughput=row["Inferences/Second"], p50_ms=row["p50 latency"] / 1e3,
                       p90_ms=row["p90 latency"] / 1e3, p99_ms=row["p99 latency"] / 1e3, transport=transport)


@dataclass(frozen=True)
class Summary:
    """Medians over rounds for one mode at one concurrency, against direct at the same concurrency."""

    mode: str
    concurrency: int
    rounds: int
    throughput: float
    p50_ms: float
    p99_ms: float
    p50_ratio: float | None  # mode / direct
    p99_ratio: float | None
    throughput_ratio: float | None
    hop_ms: float | None  # median over rounds of (mode p50 - direct p50), same round
    transport: str = "streaming"


def summarize(measurements: Sequence[Measurement]) -> list[Summary]:
    """Medians per (transport, concurrency, mode); ratios against direct on the same transport."""
    summaries = []
    keys = sorted({(m.transport, m.concurrency, m.mode) for m in measurements},
                  key=lambda k: (k[0], k[1], list(MODES).index(k[2])))
    for transport, concurrency, mode in keys:
        runs = [m for m in measurements if (m.transport, m.mode, m.concurrency) == (transport, mode, concurrency)]
        direct = {m.round: m for m in measurements
                  if (m.transport, m.mode, m.concurrency) == (transport, "direct", concurrency)}
        p50 = statistics.median(m.p50_ms for m in runs)
        p99 = statistics.median(m.p99_ms for m in runs)
        throughput = statistics.median(m.throughput for m in runs)
        ratios: tuple[float | None, ...] = (None, None, None, None)
        if direct and mode != "direct":
            d50 = statistics.median(m.p50_ms for m in direct.values())
            d99 = statistics.median(m.p99_ms for m in direct.values())
            dthr = statistics.median(m.throughput for m in direct.values())
            hops = [m.p50_ms - direct[m.round].p50_ms for m in runs if m.round in direct]
            hop = statistics.median(hops) if hops and mode in SAME_MODEL_MODES else None
            ratios = (p50 / d50, p99 / d99, throughput / dthr, hop)
        summaries.append(Summary(mode, concurrency, len(runs), throughput, p50, p99, *ratios, transport=transport))
    return summaries


def run_comparison(tool: PerfAnalyzer, *, url: str, model: str, modes: Sequence[str], concurrencies: Sequence[int],
                   rounds: int, request_count: int, max_tokens: int | None, timeout: float,
                   transports: Sequence[str] = ("streaming",)) -> list[Measurement]:
    measurements = []
    runs = [(t, m) for t in transports for m in modes]
    with tempfile.TemporaryDirectory(prefix="pointsman-pa-") as tmp:
        for concurrency in concurrencies:
            for round_ in range(rounds):
                # alternate the order so neither side always runs first on a warming machine
                order = runs if round_ % 2 == 0 else list(reversed(runs))
                for transport, mode in order:
                    m = measure(tool, url=url, mode=mode, model=model, concurrency=concurrency, round_=round_,
                                request_count=request_count, max_tokens=max_tokens, workdir=Path(tmp),
                                timeout=timeout, transport=transport)
                    LOGGER.info("c=%d round %d %-9s %-6s p50 %.1f ms p99 %.1f ms %.1f req/s", concurrency, round_,
                                transport, mode, m.p50_ms, m.p99_ms, m.throughput)
                    measurements.append(m)
    return measurements


def summary_table(summaries: Sequence[Summary], model: str):
    from rich.table import Table

    table = Table(title=f"perf_analyzer: router against {model} called directly (gRPC; streaming = "
                        f"router_stream/{model}_stream with --streaming, unary = router/{model}; medians over rounds)",
                  caption="router hop: manual and hybrid only (they reach the same model); auto may pick another "
                          "model, so its x-direct ratios include that choice")
    for column in ("transport", "mode", "conc.", "req/s", "p50 ms", "p99 ms", "p50 x direct", "p99 x direct",
                   "req/s x direct", "router hop ms"):
        table.add_column(column, justify="left" if column in ("transport", "mode") else "right")

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    for s in summaries:
        table.add_row(s.transport, s.mode, str(s.concurrency), f"{s.throughput:.1f}", f"{s.p50_ms:.1f}",
                      f"{s.p99_ms:.1f}", ratio(s.p50_ratio), ratio(s.p99_ratio), ratio(s.throughput_ratio),
                      "-" if s.hop_ms is None else f"{s.hop_ms:+.2f}")
    return table


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pointsman.loadtests.perf_analyzer",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="127.0.0.1:8001", help="Triton gRPC host:port")
    parser.add_argument("--model", default="gpt2", help="the language model: called directly and named to the router")
    parser.add_argument("--modes", default="direct,manual",
                        help=f"comma-separated, of {', '.join(MODES)} (auto may pick another model than --model)")
    parser.add_argument("--concurrency", default="1,4", help="comma-separated concurrency levels")
    parser.add_argument("--transports", default="streaming,unary",
                        help="comma-separated: streaming (the _stream models, --streaming) and/or unary (their twins)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per concurrency")
    parser.add_argument("--request-count", type=int, default=40, help="requests per measurement window")
    parser.add_argument("--max-tokens", type=int, help="override max_tokens of the input files (16)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one perf_analyzer run may take")
    parser.add_argument("--tools-dir", type=Path, default=TOOLS_DIR)
    parser.add_argument("--json", type=Path, help="also write measurements and summaries here")
    parser.add_argument("--setup-only", action="store_true", help="download and check perf_analyzer, then stop")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        print(f"perf_analyzer: --modes takes {', '.join(MODES)}; got {args.modes!r}", file=sys.stderr)  # noqa: T201
        return 2
    if "direct" not in modes:
        modes.insert(0, "direct")  # every ratio is against direct
    transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    if not transports or set(transports) - set(TRANSPORTS):
        print(f"perf_analyzer: --transports takes {', '.join(TRANSPORTS)}; got {args.transports!r}",  # noqa: T201
              file=sys.stderr)
        return 2
    try:
        tool = ensure_perf_analyzer(args.tools_dir)
        if args.setup_only:
            print(tool.binary)  # noqa: T201
            return 0
        measurements = run_comparison(tool, url=args.url, model=args.model, modes=modes,
                                      concurrencies=_ints(args.concurrency), rounds=args.rounds,
                                      request_count=args.request_count, max_tokens=args.max_tokens,
                                      timeout=args.timeout, transports=transports)
    except PerfAnalyzerError as exc:
        print(f"perf_analyzer: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    summaries = summarize(measurements)
    from rich.console import Console

    console = Console()
    (console if console.is_terminal else Console(width=140)).print(summary_table(summaries, args.model))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"measurements": [asdict(m) for m in measurements],
                                         "summaries": [asdict(s) for s in summaries]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
