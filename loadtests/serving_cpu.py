r"""Where a served token's time goes at c=1: the served step against the raw loop, and CPU by thread.

    .venv/bin/python -m pointsman.loadtests.serving_cpu --model llama-89M --prompt 32 --requests 8 \\
        [--llama-server BIN --llama-cpp-source SRC --llama-cpp-python PY --llama-load-mode none]

On a 2-core machine both of the engine's threads compute every decoding step, so any other
work per token (the stub's response and cancellation threads, tritonserver's threads that
carry the response to the client) takes its CPU from a step. This prints, in one run:
- the served per-token latency against the raw in-process loop (bench_families' decoder and
  timing), request by request in turn, as their median ratio;
- the CPU each thread of tritonserver and of the model's stub spent per streamed token
  (Linux schedstat), over the served requests only. The stub's decoding threads are told
  from its others by their CPU (each spent more than half the wall time per token);
- that other work's CPU per token, and its share of a served step;
- with --llama-server, the same for llama-server on the same checkpoint and threads (as
  bench_families runs it), its requests in turn with ours: its decoding threads against
  the rest of its process (its HTTP threads).
CPU is what the kernel counted; nothing is modelled. The checkpoint and export come from
bench_families' work folder (--work), built there on first use.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from pointsman.loadtests import bench_families as families

T = TypeVar("T")


def thread_cpu_ns(pids: Sequence[int]) -> Counter:
    """CPU time (ns, schedstat) of every thread of these processes, keyed (pid, tid)."""
    out: Counter = Counter()
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):  # a thread that ended between listing and reading
                out[(pid, tid)] = int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
    return out


def split_cpu(cpu_ns: Counter, engine: int, tokens: int, wall_ms: float) -> dict[str, float]:
    """µs of CPU per token: the engine process's decoding threads, its other threads, and other processes'.

    The decoding threads are those that spent more than half the wall time per token.
    """
    per_token = {key: ns / tokens / 1e3 for key, ns in cpu_ns.items()}
    decoding = {key for key, us in per_token.items() if key[0] == engine and us > 500 * wall_ms}
    return {"decoding": sum(per_token[k] for k in decoding),
            "other threads": sum(us for k, us in per_token.items() if k[0] == engine and k not in decoding),
            "other processes": sum(us for k, us in per_token.items() if k[0] != engine),
            "decoding threads": float(len(decoding))}


def counted(pids: Sequence[int], cpu: Counter, call: Callable[[], T]) -> T:
    """call(), adding the CPU its run took on every thread of `pids` to `cpu`."""
    before = thread_cpu_ns(pids)
    result = call()
    after = thread_cpu_ns(pids)
    cpu.update({key: after[key] - before.get(key, 0) for key in after})
    return result


def report(label: str, split: dict[str, float], wall_ms: float, other_process: str) -> None:
    other = split["other threads"] + split["other processes"]
    print(f"  {label}: {split['decoding threads']:.0f} decoding threads {split['decoding']:.0f} µs CPU/token; "  # noqa: T201
          f"its other threads {split['other threads']:.0f}, {other_process} {split['other processes']:.0f}: "
          f"besides decoding {other:.0f} µs/token = {other / 1e3 / wall_ms:.1%} of its step")


def main(argv: Sequence[str] | None = None) -> int:
    from pointsman.engine.decoder import default_threads, usable_cores
    from pointsman.engine.tokenizer import TextTokenizer
    from pointsman.loadtests.llama_cpp import per_token_ms
    from pointsman.loadtests.soak import server_processes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="llama-89M",
                        choices=[*families.SHAPES, *(f"{m}-int8" for m in families.SHAPES)])
    parser.add_argument("--prompt", type=int, default=32, help="prompt tokens")
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per request")
    parser.add_argument("--requests", type=int, default=8, help="served requests (each followed by a raw run)")
    parser.add_argument("--work", type=Path, default=families.WORK)
    parser.add_argument("--llama-server", help="also llama-server, as bench_families runs it (else not measured)")
    parser.add_argument("--llama-cpp-source")
    parser.add_argument("--llama-cpp-python")
    parser.add_argument("--llama-load-mode", choices=["mmap", "none"])
    args = parser.parse_args(argv)

    checkpoint, folder, _ = families.prepare(args.model, work=args.work)
    onnx = folder / "1" / "model.onnx"
    threads = default_threads(onnx.stat().st_size, usable_cores())
    tokenizer = TextTokenizer.from_file(str(folder / "1" / "tokenizer.json"), bos_id=families.model_bos_id(folder))
    prompt, ids = families.prompt_text(tokenizer, args.prompt)
    served, raw, llama, cpu, llama_cpu, served_tokens = [], [], [], Counter(), Counter(), 0
    with tempfile.TemporaryDirectory(prefix="serving-cpu-") as tmp, contextlib.ExitStack() as stack:
        decoder, server, _ = families.serve_with_raw_loop(stack, Path(tmp), args.model, folder, args.work, "auto",
                                                          threads)
        peer_args = argparse.Namespace(**vars(args), llama_blocking=False, llama_kv_cache="f16")  # its defaults
        url = families.start_llama_cpp(stack, checkpoint, args.model.endswith("-int8"), threads, peer_args, Path(tmp))
        if isinstance(url, Exception):
            raise SystemExit(f"llama-server failed: {url}")
        streamer = families.connect(server, args.model, "http")
        stack.callback(streamer.close)
        streamer.generate(prompt, args.tokens)  # warm: the stub's first request loads lazily-built state
        pids = [server_processes(server.process.pid)[f"{args.model}_stream"], server.process.pid]
        llama_pid = llama_server_pid(url) if url else None
        for _ in range(args.requests):
            answer = counted(pids, cpu, lambda: streamer.generate(prompt, args.tokens))
            served.append(answer.step_s() * 1e3)
            served_tokens += answer.tokens
            if url:
                llama.append(counted([llama_pid], llama_cpu, lambda: per_token_ms(url, ids, args.tokens, repeats=1)))
            raw.append(families.raw_ms_per_token(decoder, ids, args.tokens))
    wall = statistics.median(served)
    print(f"{args.model}, prompt {args.prompt}, {args.requests} requests of {args.tokens} tokens each, c=1, in turn")  # noqa: T201
    print(f"  medians: served {wall:.2f} ms/token, raw loop {statistics.median(raw):.2f}"  # noqa: T201
          + (f", llama-server {statistics.median(llama):.2f}" if llama else "")
          + f"; served/raw median of pairs {statistics.median(s / r for s, r in zip(served, raw, strict=True)):.3f}"
          + (f", llama-server/raw {statistics.median(m / r for m, r in zip(llama, raw, strict=True)):.3f}"
             if llama else ""))
    report("served", split_cpu(cpu, pids[0], served_tokens, wall), wall, "tritonserver")
    if llama:
        llama_wall = statistics.median(llama)  # per_token_ms checks that every request made args.tokens tokens
        report("llama-server", split_cpu(llama_cpu, llama_pid, args.requests * args.tokens, llama_wall), llama_wall,
               "-")
    return 0


def llama_server_pid(url: str) -> int:
    """The llama-server process listening on this URL's port."""
    port = url.rsplit(":", 1)[1]
    found = subprocess.run(["pgrep", "-f", f"[-]-port {port}( |$)"], capture_output=True, text=True).stdout.split()
    if len(found) != 1:
        raise SystemExit(f"expected one llama-server on port {port}, found {found}")
    return int(found[0])


if __name__ == "__main__":
    from pointsman.launcher.tritonserver import rerun_with_huge_pages

    rerun_with_huge_pages("pointsman.loadtests.serving_cpu")  # the raw loop runs as the stubs do
    raise SystemExit(main())
