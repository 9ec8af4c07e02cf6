"""Locust users spread over several replicas, each request tagged so its usage record can be counted.

    POINTSMAN_REPLICA_URLS=http://127.0.0.1:21000,http://127.0.0.1:21010 POINTSMAN_RUN=run1 \
        .venv/bin/locust -f loadtests/locust_replicas.py --headless -u 64 -r 64 -t 20s --host http://127.0.0.1:21000

User n sends to replica n mod R: manual requests to POINTSMAN_BENCH_MODEL (default
distilgpt2), one new token, user "<run>-<n>". The router writes one usage record per
request, so records whose user starts with "<run>-" count against locust's requests
(loadtests/bench_replicas.py does that count). An answer without text, or with an
error, is a failure.
"""

from __future__ import annotations

import itertools
import os

from locust import FastHttpUser, task

URLS = [u for u in os.environ.get("POINTSMAN_REPLICA_URLS", "").split(",") if u]
RUN = os.environ.get("POINTSMAN_RUN", "bench")
MODEL = os.environ.get("POINTSMAN_BENCH_MODEL", "distilgpt2")
_NUMBERS = itertools.count()


class ReplicaUser(FastHttpUser):
    def on_start(self) -> None:
        number = next(_NUMBERS)
        self.base = URLS[number % len(URLS)] if URLS else self.host
        self.body = {"text_input": "def add(a, b):", "max_tokens": 1, "model": MODEL, "user": f"{RUN}-{number}"}

    @task
    def generate(self) -> None:
        with self.client.post(f"{self.base}/v2/models/router/generate", json=self.body, name="router manual",
                              catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:200]}")
            elif "text_output" not in (resp.json() or {}):
                resp.failure(f"no text_output: {resp.text[:200]}")
