"""The distribution installs one namespace, pointsman, and every folder of code in it."""

from __future__ import annotations

from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_folder_is_listed_under_its_pointsman_name():
    setuptools = PYPROJECT["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    found = set()
    for name, folder in setuptools["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *relative)))

    assert found == listed


def test_nothing_installs_outside_the_pointsman_namespace():
    setuptools = PYPROJECT["tool"]["setuptools"]

    assert all(name == "pointsman" or name.startswith("pointsman.") for name in setuptools["packages"])
    assert set(setuptools["package-dir"]) == {"pointsman", "pointsman.client", "pointsman.export",
                                              "pointsman.loadtests"}
    assert PYPROJECT["project"]["name"] == "pointsman"
    assert PYPROJECT["project"]["scripts"] == {"pointsman": "pointsman.launcher.cli:main"}
