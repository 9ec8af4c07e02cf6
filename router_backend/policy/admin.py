r"""The admin key: which calls change the server, and how a caller proves it may make them.

    pointsman serve --admin-key "$KEY"      # or POINTSMAN_ADMIN_KEY=$KEY pointsman serve
    curl -H "pointsman-admin-key: $KEY" -X POST localhost:8000/v2/repository/models/gpt2/unload
    curl -X POST localhost:8000/v2/models/experiments/generate \
        -d '{"action": "stop", "payload": "{\"name\": \"ab\"}", "admin_key": "'"$KEY"'"}'

With a key set, Triton itself refuses its restricted APIs without the header (HTTP 403,
gRPC UNAVAILABLE), and the experiments model refuses the actions that change state.
Without a key nothing is restricted (the embedded server binds 127.0.0.1 by default).
"""

from __future__ import annotations

import hmac
import os

from pointsman.errors import Forbidden

ADMIN_KEY_ENV = "POINTSMAN_ADMIN_KEY"
ADMIN_HEADER = "pointsman-admin-key"  # lower case: gRPC metadata keys are
# the generate endpoints forward no header in Triton 2.51: there the key is this JSON field
ADMIN_PARAMETER = "admin_key"
# Triton checks a restricted gRPC protocol's key under this metadata name
ADMIN_GRPC_HEADER = f"triton-grpc-protocol-{ADMIN_HEADER}"
# Triton's APIs that change the server or read its internals (the rest stay open: health,
# metadata, inference, statistics)
RESTRICTED_APIS = ("model-repository", "model-config", "logging", "trace", "shared-memory")
STATE_CHANGING_ACTIONS = frozenset({"create", "pause", "resume", "stop"})


def configured_key() -> str | None:
    """The server's admin key, from the environment `pointsman serve` gives tritonserver."""
    return os.environ.get(ADMIN_KEY_ENV) or None


def admin_headers(key: str | None = None) -> dict[str, str]:
    """Headers that carry the key on the server's own calls to Triton ({} when none is set)."""
    key = key if key is not None else configured_key()
    return {ADMIN_HEADER: key} if key else {}


def admin_grpc_headers(key: str | None = None) -> dict[str, str]:
    """admin_headers for Triton's gRPC restricted protocols, which read the key under ADMIN_GRPC_HEADER."""
    key = key if key is not None else configured_key()
    return {ADMIN_GRPC_HEADER: key} if key else {}


def triton_restriction_flags(key: str) -> list[str]:
    """Tritonserver flags: restrict the admin APIs to callers sending the key, and forward it to models."""
    apis = ",".join(RESTRICTED_APIS)
    return [f"--http-restricted-api={apis}:{ADMIN_HEADER}={key}",
            f"--grpc-restricted-protocol={apis}:{ADMIN_HEADER}={key}",
            # the experiments model checks the key itself: Triton hands it the header as a parameter
            f"--http-header-forward-pattern={ADMIN_HEADER}",
            f"--grpc-header-forward-pattern={ADMIN_HEADER}"]


def require_admin(action: str, given: str | None, expected: str | None) -> None:
    """Refuse a state-changing action without the configured key (no key configured: allow)."""
    if expected is None or action not in STATE_CHANGING_ACTIONS:
        return
    if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Forbidden(f"action '{action}' changes experiments: send the admin key in the "
                        f"'{ADMIN_HEADER}' header (generate endpoints: the '{ADMIN_PARAMETER}' field)")
