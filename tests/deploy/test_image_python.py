"""The code the image serves must run on the image's Python, 3.10 (nvcr tritonserver 24.10).

    .venv/bin/pytest tests/deploy/test_image_python.py -q

The Python backend stub of the nvcr image runs its system python3, not this project's
3.11 virtual environment, so a module that only imports on 3.11 loads fine in every
local test and fails in the container. This parses every module the models import
(router_backend/ and the committed model.py adapters) as Python 3.10 and looks for the
standard-library names that appeared in 3.11 or later, unless imported inside a
try/except ImportError fallback.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGE_PYTHON = (3, 10)
DOCKERFILE = ROOT / "docker" / "Dockerfile"

# standard-library modules and names that Python 3.10 lacks
NEW_MODULES = {"tomllib": "3.11; fall back to tomli", "wsgiref.types": "3.11"}
NEW_NAMES = {
    "typing": {"Self", "LiteralString", "Never", "assert_never", "assert_type", "reveal_type", "Required",
               "NotRequired", "TypeVarTuple", "Unpack", "dataclass_transform", "override", "get_overloads",
               "clear_overloads", "TypeAliasType"},
    "enum": {"StrEnum", "ReprEnum", "EnumCheck", "verify", "member", "nonmember", "global_enum", "FlagBoundary"},
    "datetime": {"UTC"},
    "asyncio": {"TaskGroup", "timeout", "timeout_at", "Runner", "Barrier"},
    "hashlib": {"file_digest"},
    "operator": {"call"},
    "itertools": {"batched"},
    "contextlib": {"chdir"},
}
NEW_BUILTINS = {"ExceptionGroup", "BaseExceptionGroup"}


def served_sources() -> list[Path]:
    files = sorted((ROOT / "router_backend").rglob("*.py"))
    files += sorted(p for p in (ROOT / "model_repository").glob("*/1/model.py"))
    return [p for p in files if "__pycache__" not in p.parts]


def _guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Whether the node sits in the body of a try that catches ImportError."""
    while node in parents:
        parent = parents[node]
        if isinstance(parent, ast.Try) and node in parent.body:
            for handler in parent.handlers:
                caught = handler.type
                names = [caught] if not isinstance(caught, ast.Tuple) else list(caught.elts)
                if caught is None or any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError")
                                         for n in names):
                    return True
        node = parent
    return False


def problems(path: Path) -> list[str]:
    """List what in this module Python 3.10 cannot run, one line each."""
    source = path.read_text()
    try:
        tree = ast.parse(source, filename=str(path), feature_version=IMAGE_PYTHON)
    except SyntaxError as exc:
        return [f"line {exc.lineno}: not Python {IMAGE_PYTHON[0]}.{IMAGE_PYTHON[1]} syntax: {exc.msg}"]
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    aliases: dict[str, str] = {}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if not _guarded(node, parents):
                found += _import_problems(node)
            if isinstance(node, ast.Import):
                aliases.update({a.asname or a.name: a.name for a in node.names})
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module = aliases.get(node.value.id)
            if module and node.attr in NEW_NAMES.get(module, ()):
                found.append(f"line {node.lineno}: {module}.{node.attr} (new in 3.11+)")
        elif isinstance(node, ast.Name) and node.id in NEW_BUILTINS:
            found.append(f"line {node.lineno}: {node.id} (new in 3.11)")
    return found


def _import_problems(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [f"line {node.lineno}: import {a.name} (new in {NEW_MODULES[a.name]})"
                for a in node.names if a.name in NEW_MODULES]
    if node.module in NEW_MODULES:
        return [f"line {node.lineno}: from {node.module} import ... (new in {NEW_MODULES[node.module]})"]
    return [f"line {node.lineno}: from {node.module} import {a.name} (new in 3.11+)"
            for a in node.names if a.name in NEW_NAMES.get(node.module or "", ())]


def test_the_image_is_the_python_this_test_checks_for():
    text = DOCKERFILE.read_text()
    assert re.search(r"tritonserver:24\.\d\d-py3", text), "images from 24.12 on run Python 3.12: update IMAGE_PYTHON"
    assert "Python 3.10" in text


@pytest.mark.parametrize("path", served_sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_served_module_runs_on_the_image_python(path):
    assert not problems(path), "\n".join(problems(path))


def test_the_checker_finds_what_it_looks_for(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import tomllib\nfrom typing import Self\nimport enum\nx = enum.StrEnum\n"
                      "try:\n    import tomllib\nexcept ModuleNotFoundError:\n    import tomli as tomllib\n")
    assert [p.split(":")[0] for p in problems(sample)] == ["line 1", "line 2", "line 4"]
