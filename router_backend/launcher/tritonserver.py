"""Run the tritonserver binary shipped in the nvidia-pytriton wheel on our repository.

    with TritonServer(Path("model_repository"), ports=ServerPorts(8000, 8001, 8002)) as server:
        server.wait_ready()

Known needs of the 2.51 Python backend: the stub for the running Python copied into the
backend folder, libpython and nvidia_pytriton.libs on LD_LIBRARY_PATH, this venv's bin
first on PATH (the stub finds python3 there), numpy 1.x.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pointsman.launcher.processes import stop_process
from pointsman.policy.admin import ADMIN_KEY_ENV, triton_restriction_flags

LOGGER = logging.getLogger(__name__)


EXIT_TIMEOUT_S = 5  # tritonserver's --exit-timeout-secs: how long it waits for in-flight requests
# how long stop() waits for tritonserver after SIGINT before killing it: it can hang on exit
# while a gRPC stream still holds a decoupled request, past its own exit timeout
STOP_GRACE_S = EXIT_TIMEOUT_S + 5


class ServerError(RuntimeError):
    """tritonserver failed to start or a model failed to load."""


@dataclass(frozen=True)
class ServerPorts:
    http: int = 8000
    grpc: int = 8001
    metrics: int = 8002

    @classmethod
    def free(cls) -> ServerPorts:
        """Three free loopback ports (for tests)."""
        socks = [socket.socket() for _ in range(3)]
        try:
            for s in socks:
                s.bind(("127.0.0.1", 0))
            return cls(*(s.getsockname()[1] for s in socks))
        finally:
            for s in socks:
                s.close()


def pytriton_root() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("pytriton")
    if spec is None or spec.origin is None:
        raise ServerError("nvidia-pytriton is not installed (pip install nvidia-pytriton==0.7.0)")
    return Path(spec.origin).parent / "tritonserver"


# the Python-based backend every language model folder names (backend: "pointsman_llm")
LLM_BACKEND = "pointsman_llm"
LLM_BACKEND_SOURCE = Path(__file__).resolve().parents[1] / "backends" / LLM_BACKEND / "model.py"


def _install(sources: list[Path], target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for src in sources:
        dst = target / src.name
        if not dst.exists() or dst.stat().st_mtime < src.stat().st_mtime:
            shutil.copy2(src, dst)


def prepare_backends(state_dir: Path) -> Path:
    """A backend directory: the python backend with this Python's stub, and pointsman_llm.

    Triton runs a folder holding only model.py as a Python-based backend on the python
    backend's library, as the nvcr image runs its vLLM backend.
    """
    root = pytriton_root()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise ServerError(f"no Python backend stub for Python {version} in {stub.parent.parent}")
    backends = state_dir / "backends"
    _install([*(root / "backends" / "python").glob("*.*"), stub], backends / "python")
    _install([LLM_BACKEND_SOURCE], backends / LLM_BACKEND)
    return backends


HUGE_PAGES = "glibc.malloc.hugetlb=1"


def with_huge_pages(tunables: str) -> str:
    """GLIBC_TUNABLES with malloc asking for transparent huge pages, unless it already says.

    A decoding step reads every weight once; in 2 MiB pages instead of 4 KiB ones the
    weights cost far fewer TLB misses. llama-300M f32 at c=1: a step 1.1x faster
    (docs/families.md). The model stubs inherit tritonserver's environment.
    """
    if "glibc.malloc.hugetlb" in tunables:
        return tunables
    return f"{tunables}:{HUGE_PAGES}" if tunables else HUGE_PAGES


def rerun_with_huge_pages(module: str) -> None:
    """Run `python -m module` again, with the same arguments, when this process lacks malloc's huge pages.

    glibc reads GLIBC_TUNABLES only when a process starts. A benchmark that times code in its
    own process (a raw decoding loop, the engine's host work) so runs it in the memory the
    model stubs have.
    """
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if with_huge_pages(tunables) != tunables:
        os.execve(sys.executable, [sys.executable, "-m", module, *sys.argv[1:]],
                  {**os.environ, "GLIBC_TUNABLES": with_huge_pages(tunables)})


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GLIBC_TUNABLES"] = with_huge_pages(env.get("GLIBC_TUNABLES", ""))
    libs = [sysconfig.get_config_var("LIBDIR"), str(pytriton_root().parent.parent / "nvidia_pytriton.libs")]
    env["LD_LIBRARY_PATH"] = os.pathsep.join([*libs, env.get("LD_LIBRARY_PATH", "")]).rstrip(os.pathsep)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("PYTHONPATH", None)
    return env


class TritonServer:
    """A tritonserver child process with explicit model control and every model loaded."""

    def __init__(self, repository: Path, host: str = "127.0.0.1", ports: ServerPorts = ServerPorts(),
                 state_dir: Path | None = None, log_file: Path | None = None, verbose: int = 0,
                 admin_key: str | None = None, env: dict[str, str] | None = None) -> None:
        self.repository = repository.resolve()
        self.host = host
        self.ports = ports
        self.state_dir = (state_dir or Path(".pointsman")).resolve()
        self.log_file = log_file
        self.verbose = verbose
        self.admin_key = admin_key or None  # restricts Triton's admin APIs and experiment changes
        self.env = dict(env or {})  # e.g. POINTSMAN_DATABASE_URL and POINTSMAN_REPLICA of one replica
        self.process: subprocess.Popen | None = None

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.ports.http}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.ports.grpc}"

    def command(self) -> list[str]:
        return [
            str(pytriton_root() / "bin" / "tritonserver"),
            f"--model-repository={self.repository}",
            f"--backend-directory={prepare_backends(self.state_dir)}",
            "--model-control-mode=explicit", "--load-model=*",
            f"--http-address={self.host}", f"--http-port={self.ports.http}",
            f"--grpc-address={self.host}", f"--grpc-port={self.ports.grpc}",
            f"--metrics-address={self.host}", f"--metrics-port={self.ports.metrics}",
            f"--exit-timeout-secs={EXIT_TIMEOUT_S}", "--strict-readiness=true", f"--log-verbose={self.verbose}",
            *(triton_restriction_flags(self.admin_key) if self.admin_key else []),
        ]

    def start(self) -> TritonServer:
        out = open(self.log_file, "ab") if self.log_file else None  # noqa: SIM115 - owned by the process
        env = server_env()
        # the router reads live load from the metrics port; analytics keep state here
        env["POINTSMAN_HTTP_URL"] = f"http://{self.host}:{self.ports.http}"
        env["POINTSMAN_METRICS_URL"] = f"http://{self.host}:{self.ports.metrics}/metrics"
        env["POINTSMAN_GRPC_URL"] = self.grpc_url  # the twins forward over it (triton_adapters/loopback.py)
        env["POINTSMAN_STATE_DIR"] = str(self.state_dir)
        env.pop(ADMIN_KEY_ENV, None)
        if self.admin_key:  # the router and experiments models read it (pointsman.policy.admin)
            env[ADMIN_KEY_ENV] = self.admin_key
        env.update(self.env)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # own process group, so stop() can also reap the Python backend stubs that a
        # crashed server leaves behind (they outlive it and ignore SIGTERM)
        self.process = subprocess.Popen(self.command(), env=env, stdout=out,
                                        stderr=subprocess.STDOUT if out else None, start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 300.0) -> None:
        """Block until /v2/health/ready; raise with the server's own words if it exits."""
        deadline = time.monotonic() + timeout
        url = f"http://{self.http_url}/v2/health/ready"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServerError(f"tritonserver exited with code {self.process.returncode}: {self._log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise ServerError(f"tritonserver not ready after {timeout:.0f}s: {self._log_tail()}")

    def _log_tail(self, lines: int = 30) -> str:
        if not self.log_file or not Path(self.log_file).exists():
            return "(see the server output above)"
        return "\n".join(Path(self.log_file).read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = STOP_GRACE_S) -> int | None:
        """SIGINT, then SIGKILL after `timeout`; then reap every process of the server's group.

        The Python backend stubs share the server's process group, and a stub whose model
        was not finalized (the server exited or was killed first) outlives it otherwise.
        """
        if self.process is None:
            return None
        code = stop_process(self.process, timeout)
        self._kill_leftovers()
        return code

    def _kill_leftovers(self) -> None:
        # ProcessLookupError: nothing is left of the server's process group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def __enter__(self) -> TritonServer:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
