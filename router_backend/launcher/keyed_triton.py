"""Start a container's tritonserver with the admin key from a mounted secret: the image's command, keyed.

    POINTSMAN_ADMIN_KEY_FILE=/run/secrets/pointsman_admin_key \
        python3 -m pointsman.launcher.keyed_triton tritonserver --model-repository=/models ...

Reads the key from $POINTSMAN_ADMIN_KEY_FILE (a compose or Kubernetes secret mounted as a
file), else $POINTSMAN_ADMIN_KEY, appends the restriction flags `pointsman serve` uses
(pointsman.policy.admin) and replaces itself with tritonserver, so signals reach it
directly. The key is exported for the router's own repository calls and the experiments
model. Without a key, the command runs unchanged.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pointsman.policy.admin import ADMIN_KEY_ENV, triton_restriction_flags

KEY_FILE_ENV = f"{ADMIN_KEY_ENV}_FILE"


def admin_key(env: dict[str, str]) -> str | None:
    """The key: the file's content (stripped) when $POINTSMAN_ADMIN_KEY_FILE is set, else the variable."""
    path = env.get(KEY_FILE_ENV)
    if path:
        key = Path(path).read_text().strip()
        if not key:
            raise SystemExit(f"{KEY_FILE_ENV}={path} is empty: put the admin key in it, or unset the variable")
        return key
    return env.get(ADMIN_KEY_ENV) or None


def keyed_command(command: Sequence[str], key: str | None) -> list[str]:
    return [*command, *triton_restriction_flags(key)] if key else list(command)


def main(argv: Sequence[str] | None = None) -> int:
    command = list(sys.argv[1:] if argv is None else argv)
    if not command:
        raise SystemExit("usage: python3 -m pointsman.launcher.keyed_triton tritonserver [flags...]")
    key = admin_key(dict(os.environ))
    if key:
        os.environ[ADMIN_KEY_ENV] = key
    os.execvp(command[0], keyed_command(command, key))
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
