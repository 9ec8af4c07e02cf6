#!/usr/bin/env python3
"""Set the execution_providers parameter of every language model in a Triton repository.

    python3 docker/configure_models.py /models --execution-providers auto

Runs in the image build (docker/Dockerfile) with nothing but the standard library: the
image has no tritonclient to parse config.pbtxt as a protobuf, so the one parameter
block is rewritten in place. Configs without the parameter (router, classifier, ...)
are left alone. Exit status 2 when the value is not one the engine accepts or no model
has the parameter.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

# the values pointsman.engine.decoder.choose_providers accepts
CHOICES = ("auto", "tensorrt", "cuda", "cpu")
_PARAMETER = re.compile(r'(key:\s*"execution_providers"\s*value\s*\{\s*string_value:\s*")([^"]*)(")')


def set_execution_providers(config_text: str, value: str) -> tuple[str, bool]:
    """Return the text with the parameter set, and whether the parameter was there."""
    new, count = _PARAMETER.subn(lambda m: m.group(1) + value + m.group(3), config_text)
    return new, count > 0


def configure(repository: Path, value: str) -> list[str]:
    """Rewrite every config.pbtxt one level below `repository`; return the models changed."""
    changed = []
    for config in sorted(repository.glob("*/config.pbtxt")):
        text, found = set_execution_providers(config.read_text(), value)
        if found:
            config.write_text(text)
            changed.append(config.parent.name)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="configure_models", description=__doc__.splitlines()[0])
    parser.add_argument("repository", type=Path)
    parser.add_argument("--execution-providers", default="auto")
    args = parser.parse_args(argv)
    value = args.execution_providers.lower()
    if value not in CHOICES:
        print(f"configure_models: --execution-providers must be one of {', '.join(CHOICES)} "  # noqa: T201
              f"(got {args.execution_providers!r})", file=sys.stderr)
        return 2
    changed = configure(args.repository, value)
    if not changed:
        print(f"configure_models: no model in {args.repository} has an execution_providers parameter",  # noqa: T201
              file=sys.stderr)
        return 2
    print(f"execution_providers={value}: {', '.join(changed)}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
