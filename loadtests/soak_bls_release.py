"""Soak: decoupled BLS calls from many threads, with the response iterators let go at once or held a while.

    .venv/bin/python -m pointsman.loadtests.soak_bls_release --seconds 300 --threads 16

Builds a two-model repository in a temporary folder and serves it with the real tritonserver:
- `echo_stream`, a decoupled Python model in the language-model contract: each request gets
  two text pieces, then a final response with its finish reason;
- `bls_caller`, whose threads call it through pointsman.triton_adapters.bls.generate_via_bls
  (the router's own BLS path) as fast as they can.

Each mode runs on a fresh server. `immediate` lets each response iterator go as soon as it
is read, as the router did before DelayedRelease; `delayed` keeps it in bls.RELEASE (the
router now). Prints the calls made, and whether and when the caller's stub died.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pointsman.launcher.tritonserver import ServerPorts, TritonServer

MODES = ("immediate", "delayed")
COUNT_LINE = re.compile(r"bls_caller \w+: (\d+) calls")

ECHO_MODEL = '''
from pointsman.policy.contract import LLM_OUTPUTS, GenerateParams, input_tensors
from pointsman.triton_adapters.model_config import complete_config
from pointsman.triton_adapters.triton_io import FINAL, response


class TritonPythonModel:
    @staticmethod
    def auto_complete_config(config):
        return complete_config(config, input_tensors(GenerateParams), LLM_OUTPUTS, decoupled=True)

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            sender.send(response(text_output="two ", tokens=1))
            sender.send(response(text_output="pieces", tokens=2))
            sender.send(response(text_output="two pieces", tokens=2, finish_reason="length", prompt_tokens=1,
                                 mean_logprob=-1.0), flags=FINAL)
        return None
'''

CALLER_MODEL = '''
import json
import threading
import time

import triton_python_backend_utils as pb_utils

from pointsman.triton_adapters import bls
from pointsman.triton_adapters.triton_io import FINAL


class TritonPythonModel:
    def initialize(self, args):
        params = {k: v["string_value"] for k, v in json.loads(args["model_config"])["parameters"].items()}
        self.mode, self.threads = params["mode"], int(params["threads"])
        if self.mode == "immediate":  # the router before DelayedRelease: the iterator goes when read
            bls.RELEASE.keep = lambda thing: None
        self.calls, self.failures, self.started = 0, 0, False
        self.lock = threading.Lock()

    def execute(self, requests):  # the first request starts the threads: BLS is refused before execute
        if not self.started:
            self.started = True
            for _ in range(self.threads):
                threading.Thread(target=self._call_forever, daemon=True).start()
            threading.Thread(target=self._report, daemon=True).start()
        for request in requests:
            request.get_response_sender().send(flags=FINAL)
        return None

    def _call_forever(self):
        while True:
            try:
                for _piece, _final in bls.generate_via_bls("echo_stream", {"text_input": "hello", "max_tokens": 2}):
                    pass
                failed = 0
            except Exception as exc:  # noqa: BLE001 - counted and logged; the soak goes on
                pb_utils.Logger.log_error(f"bls_caller call failed: {exc}")
                failed = 1
            with self.lock:
                self.calls += 1
                self.failures += failed

    def _report(self):
        while True:
            time.sleep(2.0)
            pb_utils.Logger.log_warn(f"bls_caller {self.mode}: {self.calls} calls, {self.failures} failed")
'''


def caller_config(mode: str, threads: int) -> str:
    return (f'name: "bls_caller"\nbackend: "python"\nmax_batch_size: 0\n'
            'model_transaction_policy { decoupled: true }\n'
            'input [ { name: "x" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
            'output [ { name: "y" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
            f'parameters {{ key: "mode" value: {{ string_value: "{mode}" }} }}\n'
            f'parameters {{ key: "threads" value: {{ string_value: "{threads}" }} }}\n')


def build_repository(root: Path, mode: str, threads: int) -> Path:
    repository = root / "repository"
    for name, code, config in (("echo_stream", ECHO_MODEL, 'backend: "python"\n'),
                               ("bls_caller", CALLER_MODEL, caller_config(mode, threads))):
        (repository / name / "1").mkdir(parents=True)
        (repository / name / "1" / "model.py").write_text(code)
        (repository / name / "config.pbtxt").write_text(config)
    return repository


def stub_alive(repository: Path) -> bool:
    marker = str(repository / "bls_caller" / "1" / "model.py").encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker in cmdline.read_bytes():
                return True
        except OSError:
            continue
    return False


@dataclass
class SoakResult:
    mode: str
    seconds: float
    calls: int
    died_after_s: float | None

    def line(self) -> str:
        fate = f"stub DIED after {self.died_after_s:.0f} s" if self.died_after_s is not None else "stub alive"
        rate = self.calls / self.seconds
        return f"{self.mode:9} {self.calls:8d} calls in {self.seconds:5.0f} s ({rate:6.0f}/s); {fate}"


def soak(mode: str, seconds: float, threads: int, poll_s: float = 1.0) -> SoakResult:
    with tempfile.TemporaryDirectory(prefix="soak-bls-") as folder:
        root = Path(folder)
        repository = build_repository(root, mode, threads)
        log = root / "tritonserver.log"
        with TritonServer(repository, ports=ServerPorts.free(), state_dir=root / "state", log_file=log) as server:
            server.wait_ready(timeout=120)
            start = urllib.request.Request(f"http://{server.http_url}/v2/models/bls_caller/generate",
                                           data=json.dumps({"x": 1}).encode(), method="POST")
            urllib.request.urlopen(start, timeout=30).read()
            began = time.monotonic()
            died = None
            while time.monotonic() - began < seconds:
                time.sleep(poll_s)  # a sampling period, not a wait for an event
                if not stub_alive(repository):
                    died = time.monotonic() - began
                    break
            elapsed = time.monotonic() - began
            counts = COUNT_LINE.findall(log.read_text(errors="replace"))
    return SoakResult(mode, elapsed, int(counts[-1]) if counts else 0, died)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="how long each mode runs, unless its stub dies")
    parser.add_argument("--threads", type=int, default=16, help="caller threads making BLS calls")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--rounds", type=int, default=1, help="each mode this many times, taking turns")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    for mode in modes:
        if mode not in MODES:
            parser.error(f"--modes: unknown mode {mode!r}; accepted: {', '.join(MODES)}")
    for round_ in range(1, args.rounds + 1):
        for mode in modes:
            print(f"round {round_}: {soak(mode, args.seconds, args.threads).line()}", flush=True)  # noqa: T201


if __name__ == "__main__":
    main()
