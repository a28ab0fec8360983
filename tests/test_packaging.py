"""pyproject.toml and environment.yml describe the same environment.

The venv route (`make`) reads pyproject.toml and the conda route reads environment.yml; this test
keeps them from drifting apart. Conda provides only Python and pip, and every other package is a
pip requirement with the same spec as in pyproject.toml.
"""

from pathlib import Path

import pytest
import yaml  # PyYAML: a dependency of jupyterlab (via jupyter_server -> jupyter_events)
from packaging.requirements import Requirement  # a dependency of pytest
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest itself depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _key(requirement: Requirement) -> str:
    return canonicalize_name(requirement.name)


def _by_name(specs: list[str]) -> dict[str, Requirement]:
    requirements = [Requirement(spec) for spec in specs]
    by_name = {_key(r): r for r in requirements}
    assert len(by_name) == len(requirements), f"duplicate package in {specs}"
    return by_name


@pytest.fixture(scope="module")
def project() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


@pytest.fixture(scope="module")
def conda_env() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


@pytest.fixture(scope="module")
def conda_pip(conda_env: dict) -> dict[str, Requirement]:
    """The `pip:` section of environment.yml, without pip options such as --extra-index-url."""
    sections = [d["pip"] for d in conda_env["dependencies"] if isinstance(d, dict)]
    assert len(sections) == 1, "environment.yml: expected exactly one `pip:` section"
    return _by_name([spec for spec in sections[0] if not spec.startswith("-")])


def test_conda_provides_only_python_and_pip(project: dict, conda_env: dict) -> None:
    conda_specs = [d for d in conda_env["dependencies"] if isinstance(d, str)]
    assert sorted(conda_specs) == sorted(["pip", "python" + project["requires-python"]]), (
        "environment.yml: conda should install only python (same bound as requires-python) "
        f"and pip; got {conda_specs}"
    )


def test_runtime_dependencies_match(project: dict, conda_pip: dict[str, Requirement]) -> None:
    for name, wanted in _by_name(project["dependencies"]).items():
        assert name in conda_pip, f"environment.yml: missing runtime dependency {wanted}"
        got = conda_pip[name]
        assert got.extras == wanted.extras and got.specifier == wanted.specifier, (
            f"environment.yml has {got}, pyproject.toml has {wanted}: keep them the same"
        )


def test_dev_and_online_tools_present(project: dict, conda_pip: dict[str, Requirement]) -> None:
    extras = project["optional-dependencies"]
    for spec in extras["dev"] + extras["online"] + extras["sweep"]:
        assert _key(Requirement(spec)) in conda_pip, f"environment.yml: missing tool {spec}"


def test_nothing_extra_in_conda_env(project: dict, conda_pip: dict[str, Requirement]) -> None:
    extras = project["optional-dependencies"]
    specs = project["dependencies"] + extras["dev"] + extras["online"] + extras["sweep"]
    unknown = sorted(set(conda_pip) - {_key(Requirement(spec)) for spec in specs})
    assert not unknown, f"environment.yml lists packages pyproject.toml does not: {unknown}"
