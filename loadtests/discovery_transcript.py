"""Transcript: a model loaded at run time joins auto selection, and leaves when unloaded.

    .venv/bin/python -m pointsman.loadtests.discovery_transcript --rounds 5

Starts a tritonserver (free loopback ports) on a temporary repository holding the router,
the catalog model and the gpt2 and distilgpt2 engines, all from model_repository/. Then,
each round: puts codegen's exported engine folder into the repository, loads it through
Triton's repository API, and sends a coding prompt with auto_select every 20 ms until the
router answers with codegen; then unloads it and does the same until the router no
longer does. It prints each step as it happens, and the time from the load (unload) call
returning to the first request answered by (away from) the model, measured per round.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from pointsman.launcher.tritonserver import ServerPorts, TritonServer

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = ROOT / "model_repository"
STARTING = ("router", "router_stream", "catalog", "gpt2_stream", "distilgpt2_stream")
LATE = "codegen_stream"
PROMPT = "def fibonacci(n):"
POLL_S = 0.02


def _post(base: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body or {}).encode()
    request = urllib.request.Request(base + path, data=data, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


class Transcript:
    def __init__(self, base: str) -> None:
        self.base = base
        self.start = time.monotonic()

    def say(self, line: str) -> None:
        print(f"[{time.monotonic() - self.start:8.3f} s] {line}", flush=True)  # noqa: T201 - the transcript

    def auto(self) -> dict:
        status, answer = _post(self.base, "/v2/models/router/generate",
                               {"text_input": PROMPT, "auto_select": True, "max_tokens": 1})
        if status != 200:
            raise RuntimeError(f"router answered {status}: {answer}")
        return answer

    def catalog(self) -> list[str]:
        _, answer = _post(self.base, "/v2/models/catalog/generate")
        return [f"{m['model_name']}({'loaded' if m['current_status']['loaded'] else 'not loaded'})"
                for m in json.loads(answer["models"])]

    def until(self, wanted, label: str) -> tuple[float, int, dict]:
        began, asked = time.monotonic(), 0
        while True:
            answer = self.auto()
            asked += 1
            if wanted(answer["selected_model"]):
                return time.monotonic() - began, asked, answer
            if time.monotonic() - began > 30:
                raise RuntimeError(f"not within 30 s: {label}")
            time.sleep(POLL_S)  # the polling interval of the transcript's client


def run(rounds: int) -> int:
    with tempfile.TemporaryDirectory(prefix="discovery-") as tmp:
        repository = Path(tmp) / "repository"
        repository.mkdir()
        for name in STARTING:
            (repository / name).symlink_to(REPOSITORY / name, target_is_directory=True)
        server = TritonServer(repository, ports=ServerPorts.free(), state_dir=Path(tmp) / "state",
                              log_file=Path(tmp) / "tritonserver.log")
        server.start()
        try:
            server.wait_ready(timeout=300)
            t = Transcript(f"http://{server.http_url}")
            t.say(f"server ready; catalog: {', '.join(t.catalog())}")
            first = t.auto()
            t.say(f"auto '{PROMPT}' -> {first['selected_model']}: {first['selection_reason']}")
            (repository / LATE).symlink_to(REPOSITORY / LATE, target_is_directory=True)
            joins, leaves = [], []
            for index in range(1, rounds + 1):
                t.say(f"round {index}: POST /v2/repository/models/{LATE}/load")
                status, body = _post(t.base, f"/v2/repository/models/{LATE}/load")
                if status != 200:
                    raise RuntimeError(f"load answered {status}: {body}")
                t.say("load returned (the model is READY in Triton)")
                seconds, asked, answer = t.until(lambda m: m == "codegen", "codegen joins")
                joins.append(seconds)
                t.say(f"auto -> codegen after {seconds * 1000:.0f} ms ({asked} requests): {answer['selection_reason']}")
                t.say(f"catalog: {', '.join(t.catalog())}")
                _post(t.base, f"/v2/repository/models/{LATE}/unload")
                t.say(f"POST /v2/repository/models/{LATE}/unload returned")
                seconds, asked, answer = t.until(lambda m: m != "codegen", "codegen leaves")
                leaves.append(seconds)
                t.say(f"auto -> {answer['selected_model']} after {seconds * 1000:.0f} ms ({asked} requests): "
                      f"{answer['selection_reason']}")
            print(f"\n{'':<34}{'median':>10}{'max':>10}  (ms, {rounds} rounds)")  # noqa: T201
            for label, values in (("load returned -> chosen by auto", joins),
                                  ("unload returned -> no longer chosen", leaves)):
                print(f"{label:<34}{statistics.median(values) * 1000:>10.0f}{max(values) * 1000:>10.0f}")  # noqa: T201
        finally:
            server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pointsman.loadtests.discovery_transcript",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    return run(args.rounds)


if __name__ == "__main__":
    sys.exit(main())
