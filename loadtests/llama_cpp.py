r"""llama.cpp's llama-server as a peer: the same checkpoint converted to GGUF, the same threads, 16 slots.

    server = LlamaCppPeer(binary, source, python)  # built from the llama-cpp-python sdist (docs/families.md)
    gguf = server.convert(checkpoint, "f32")  # or "q8_0" against our int8
    with server.serve(gguf, threads=2, slots=16, context=1024) as url:
        ms = per_token_ms(url, ids, 128); tps = concurrent_tps(url, ids, 128, 16)

Optional: loadtests.bench_families uses it only when given --llama-server and
--llama-cpp-source, and reports "not measured" otherwise. The conversion runs the
vendored convert_hf_to_gguf.py with --llama-cpp-python, a venv holding its requirements
(sentencepiece, which the project does not need, among them). Our benchmark checkpoints carry a tokenizer the project
trains, whose pre-tokenizer hash llama.cpp does not know, so the conversion declares it
"gpt-2" (plain byte-level BPE); prompts are sent as token ids, so llama.cpp never tokenizes.
Requests are greedy (temperature 0), ignore EOS, and do not reuse a cached prompt
(cache_prompt false), like ours.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

from pointsman.loadtests.bench_serving import Streamed

READY_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 600.0
_CONVERT = """
import runpy, sys
source = sys.argv[1]
sys.path.insert(0, source)
sys.path.insert(1, source + "/gguf-py")
from conversion import base
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"  # the project's own byte-level BPE
sys.argv = [source + "/convert_hf_to_gguf.py", *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaCppPeer:
    """A built llama-server binary and the llama.cpp source it came from (for the GGUF converter)."""

    def __init__(self, binary: Path, source: Path, python: str = sys.executable) -> None:
        self.binary, self.source, self.python = binary, source, python

    @classmethod
    def find(cls, binary: str | None, source: str | None, python: str | None = None) -> LlamaCppPeer | None:
        """The peer, or None when either path is missing (the benchmark then says it was not measured)."""
        if not binary or not source or not Path(binary).is_file():
            return None
        if not (Path(source) / "convert_hf_to_gguf.py").is_file():
            return None
        return cls(Path(binary), Path(source), python or sys.executable)

    def convert(self, checkpoint: Path, outtype: str, out_dir: Path) -> Path:
        """Convert the checkpoint to a GGUF of `outtype` (f32 or q8_0), once."""
        out = out_dir / f"{checkpoint.name}-{outtype}.gguf"
        if out.exists():
            return out
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out_dir) as staging:
            source = _with_legacy_config(checkpoint, Path(staging))
            done = subprocess.run([self.python, "-c", _CONVERT, str(self.source), str(source), "--outtype", outtype,
                                   "--outfile", str(out)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            out.unlink(missing_ok=True)
            tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"GGUF conversion failed: {tail[0]}")
        return out

    @contextlib.contextmanager
    def serve(self, gguf: Path, threads: int, slots: int, context: int, log: Path,
              blocking: bool = False, load_mode: str | None = None, kv_cache: str | None = None) -> Iterator[str]:
        """Run llama-server on a free loopback port; yield its URL once /health answers 200.

        blocking: its threads sleep when they wait, as onnxruntime's do with spinning off.
        That takes two settings: --poll 0 for the wait between graphs, and, in an OpenMP build
        (the sdist's default), OMP_WAIT_POLICY=passive for the barrier between operators,
        which --poll does not reach. Without OpenMP, ggml's barrier always spins. False
        leaves llama.cpp's defaults: --poll 50 and libgomp's spin-then-sleep barrier.
        load_mode: its --load-mode (none reads the weights into memory rather than mapping
        the file); None leaves its default (mmap).
        kv_cache: the type of its KV cache (--cache-type-k and -v, e.g. f32); None leaves its
        default, f16, which reads half the bytes per cached token of a float32 cache.
        """
        port = _free_port()
        command = [str(self.binary), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port),
                   "-t", str(threads), "-tb", str(threads), "-np", str(slots), "-c", str(slots * context),
                   "--no-webui", *(["--poll", "0"] if blocking else []),
                   *(["--load-mode", load_mode] if load_mode else []),
                   *(["--cache-type-k", kv_cache, "--cache-type-v", kv_cache] if kv_cache else [])]
        env = {**os.environ, **({"OMP_WAIT_POLICY": "passive"} if blocking else {})}
        with open(log, "w") as sink:
            process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, process, log)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _with_legacy_config(checkpoint: Path, staging: Path) -> Path:
    """The checkpoint as the converter reads it: transformers 5 saves gpt2 without `n_ctx`, which it needs.

    Other checkpoints go as they are; a gpt2 one is linked file by file into `staging`
    with n_ctx = n_positions added to its config.json.
    """
    config = json.loads((checkpoint / "config.json").read_text())
    if config.get("model_type") != "gpt2" or "n_ctx" in config:
        return checkpoint
    for path in checkpoint.iterdir():
        if path.name != "config.json":
            (staging / path.name).symlink_to(path.resolve())
    (staging / "config.json").write_text(json.dumps({**config, "n_ctx": config["n_positions"]}))
    return staging


def _wait_ready(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"llama-server exited with {process.returncode}: {log.read_text()[-500:]}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{url}/health").status_code == 200:
                    return
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.2)  # the polling interval, cut short if the server dies
    raise RuntimeError(f"llama-server not ready after {READY_TIMEOUT_S:.0f} s")


def _body(ids: Sequence[int], tokens: int, stream: bool) -> dict:
    # timings_per_token: every streamed event says how many tokens were predicted by then
    return {"prompt": list(ids), "n_predict": tokens, "ignore_eos": True, "temperature": 0.0,
            "cache_prompt": False, "stream": stream, "timings_per_token": stream}


def per_token_ms(url: str, ids: Sequence[int], tokens: int, repeats: int = 2) -> float:
    """Streaming, client side, per decoding step between the first and last event, best of `repeats`, as ours.

    Each event is dated by its `timings.predicted_n`: llama-server sends nothing for a token
    that ends inside a character, and drops such bytes at the end, so (last - first arrival)
    / (tokens - 1) would count steps it never timed (4% of a 128-token answer in one run).
    """
    best = float("inf")
    with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
        for _ in range(repeats):
            sent, arrivals, counts, count = time.perf_counter(), [], [], 0
            with client.stream("POST", f"{url}/completion", json=_body(ids, tokens, True)) as response:
                response.raise_for_status()
                for line in response.iter_lines():
                    if not line.startswith("data: "):
                        continue
                    at, event = time.perf_counter(), json.loads(line[6:])
                    if event.get("stop"):  # the closing event carries no new token
                        count = int(event.get("tokens_predicted", 0))
                    elif event.get("content"):
                        arrivals.append(at)
                        counts.append(int(event["timings"]["predicted_n"]))
            if count != tokens:
                raise RuntimeError(f"llama-server predicted {count} tokens, not {tokens}")
            best = min(best, Streamed(sent, arrivals, counts, count).step_s())
    return best * 1e3


def concurrent_tps(url: str, ids: Sequence[int], tokens: int, concurrency: int) -> float:
    """Tokens/s of `concurrency` streamed requests sent together (prefill included), as bench_families measures ours."""
    spans: list[tuple[float, float, int]] = []
    errors: list[str] = []
    start = threading.Barrier(concurrency)
    lock = threading.Lock()

    def one() -> None:  # streamed, as bench_families streams ours: each side pays for a message per token
        count, status = 0, 200
        with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
            start.wait()
            sent = time.perf_counter()
            with client.stream("POST", f"{url}/completion", json=_body(ids, tokens, True)) as response:
                status = response.status_code
                for line in response.iter_lines():
                    if line.startswith("data: ") and (event := json.loads(line[6:])).get("stop"):
                        count = int(event.get("tokens_predicted", 0))
            done = time.perf_counter()
        with lock:
            if status != 200:
                errors.append(f"status {status}")
            else:
                spans.append((sent, done, count))

    workers = [threading.Thread(target=one) for _ in range(concurrency)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors or any(count != tokens for *_, count in spans):
        raise RuntimeError(f"llama-server: {errors[:1] or 'a request stopped short'}")
    return sum(c for *_, c in spans) / (max(e for _, e, _ in spans) - min(s for s, _, _ in spans))
