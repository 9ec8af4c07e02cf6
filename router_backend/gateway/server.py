"""Run the gateway: in this process (`pointsman gateway`), or as a child of `pointsman serve`.

    main(["--triton-grpc", "127.0.0.1:8001", "--port", "9000"])
    with GatewayProcess("127.0.0.1:8001", port=9000) as gateway:
        gateway.wait_ready()
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9000  # the port Triton's own OpenAI frontend uses


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--triton-grpc", default="127.0.0.1:8001", help="Triton's gRPC endpoint, host:port")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one generation may take")
    parser.add_argument("--log-level", default="warning", help="uvicorn's log level")
    parser.add_argument("--loop", default="auto", choices=("auto", "asyncio", "uvloop"),
                        help="event loop (auto: uvloop when installed)")
    return parser


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from pointsman.gateway.app import create_app

    # one worker, one event loop: a single long-lived gRPC channel serves every request
    # httptools parses HTTP in C and uvloop runs the loop on libuv: the gateway's own cost per
    # request is mostly Python, so these two are what bench_gateway's overhead figure moves with
    uvicorn.run(create_app(args.triton_grpc, args.timeout), host=args.host, port=args.port,
                log_level=args.log_level, access_log=False, http="httptools", loop=args.loop)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = add_arguments(argparse.ArgumentParser(prog="pointsman gateway",
                                                   description="the HTTP gateway in front of a Triton server"))
    return run(parser.parse_args(argv))


class GatewayError(RuntimeError):
    """The gateway process exited or did not answer in time."""


class GatewayProcess:
    """The gateway as a child process (what `pointsman serve` starts beside tritonserver)."""

    def __init__(self, triton_grpc: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 log_file: Path | None = None) -> None:
        self.triton_grpc = triton_grpc
        self.host = host
        self.port = port
        self.log_file = log_file
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> GatewayProcess:
        out = open(self.log_file, "ab") if self.log_file else None  # noqa: SIM115 - owned by the process
        command = [sys.executable, "-m", "pointsman.gateway", "--triton-grpc", self.triton_grpc,
                   "--host", self.host, "--port", str(self.port)]
        self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT if out else None)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the gateway answers /health/live (Triton's readiness is its own)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise GatewayError(f"the gateway exited with code {self.process.returncode}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.url}/health/live", timeout=2):
                return
            time.sleep(0.1)
        raise GatewayError(f"the gateway did not answer on {self.url} within {timeout:.0f}s")

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> GatewayProcess:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
