"""The console's page ships whole and offline: every file it loads exists, installs, and nothing comes from outside."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "router_backend" / "gateway" / "console" / "static"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# the only absolute URL the page may hold: a namespace name, never fetched
ALLOWED_URLS = {"http://www.w3.org/2000/svg"}


def test_every_static_file_is_in_the_package_data():
    globs = PYPROJECT["tool"]["setuptools"]["package-data"]["pointsman.gateway.console"]
    files = [p.relative_to(STATIC.parent).as_posix() for p in STATIC.rglob("*") if p.is_file()]

    assert files and all(any(fnmatch.fnmatch(f, g) for g in globs) for f in files), files


def test_every_file_the_page_loads_exists():
    page = (STATIC / "index.html").read_text()
    loaded = re.findall(r'(?:src|href)="/ui/static/([^"]+)"', page)
    imported = [name for js in STATIC.glob("*.js") for name in re.findall(r'from "\./([^"]+)"', js.read_text())]

    assert {"main.js", "console.css"} <= set(loaded)
    assert all((STATIC / name).is_file() for name in loaded + imported), loaded + imported


def test_nothing_is_fetched_from_outside():
    urls = {url for path in STATIC.iterdir() for url in re.findall(r"https?://[^\s\"'`)]+", path.read_text())}

    assert urls <= ALLOWED_URLS, urls - ALLOWED_URLS


def test_user_text_never_reaches_innerhtml():
    """Prompts, reasons and model names are set as text (common.js el/say), never parsed as HTML."""
    offenders = [p.name for p in STATIC.glob("*.js") if re.search(r"innerHTML|outerHTML|insertAdjacentHTML",
                                                                   p.read_text())]

    assert offenders == []
