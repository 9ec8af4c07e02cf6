"""Stopping a child process politely, then firmly: one rule for tritonserver and the gateway.

    code = stop_process(process, timeout=10.0)
"""

from __future__ import annotations

import signal
import subprocess


def stop_process(process: subprocess.Popen, timeout: float) -> int:
    """SIGINT (both servers drain on it), SIGKILL after `timeout`; return the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
