"""The conda environments (`--sdm conda`) agree with what the code imports and pyproject.toml."""

import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from rethink.workflow.sources import imported_names, package_sources
from tests.conftest import REPO

# conda-forge names of PyPI packages, and the modules they provide where the names differ
CONDA_TO_PYPI = {
    "pytorch": "torch", "matplotlib-base": "matplotlib", "seaborn-base": "seaborn",
    "py-opencv": "opencv-python-headless",
}  # fmt: skip
MODULE_TO_PYPI = {"yaml": "pyyaml", "PIL": "pillow", "cv2": "opencv-python-headless"}
PROVIDED = {"snakemake"}  # Snakemake's script wrapper puts itself on the job's import path


def rules() -> list[dict]:
    """name, script and conda env of every rule that runs a script."""
    found = []
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            script = re.search(r'script:\s+"\.\./(scripts/[\w.]+)"', block)
            conda = re.search(r'conda:\s+"\.\./(envs/[\w.]+)"', block)
            found.append(
                dict(
                    name=block.split(":")[0],
                    script=script and script.group(1),
                    env=conda and conda.group(1),
                )
            )
    return found


def env_packages(env: str) -> dict[str, str]:
    """PyPI name -> pinned version of each package in a conda environment file."""
    spec = yaml.safe_load((REPO / env).read_text())
    pins = dict(dep.split("=", 1) for dep in spec["dependencies"] if isinstance(dep, str))
    return {CONDA_TO_PYPI.get(name, name): version for name, version in pins.items()}


def third_party_imports(script: str) -> set[str]:
    """Top-level modules outside the standard library and rethink that a script imports,
    directly or through the rethink modules it imports."""
    paths = [REPO / script, *map(Path, package_sources(REPO / script))]
    modules = {name.split(".")[0] for path in paths for name in imported_names(path)}
    return modules - set(sys.stdlib_module_names) - {"rethink"} - PROVIDED


RULES = [rule for rule in rules() if rule["script"]]


def test_every_rule_runs_in_a_pinned_environment():
    assert {rule["name"] for rule in RULES} >= {"train_run", "write_variant", "plot_figure"}
    for rule in RULES:
        assert rule["env"], f"rule {rule['name']} has no conda: environment"
        spec = yaml.safe_load((REPO / rule["env"]).read_text())
        for dep in spec["dependencies"]:
            assert isinstance(dep, str) and re.fullmatch(r"[\w.-]+=[\w.]+", dep), (rule, dep)


@pytest.mark.parametrize("rule", RULES, ids=[rule["name"] for rule in RULES])
def test_the_environment_provides_every_module_the_rule_imports(rule):
    packages = env_packages(rule["env"])
    needed = {MODULE_TO_PYPI.get(m, m) for m in third_party_imports(rule["script"])}
    assert needed <= set(packages), f"{rule['env']} lacks {sorted(needed - set(packages))}"


def test_pins_satisfy_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = {r.name: r for r in map(Requirement, project["dependencies"])}
    checked = 0
    for env in sorted((REPO / "envs").glob("*.yaml")):
        for name, version in env_packages(f"envs/{env.name}").items():
            if name in requirements:
                assert requirements[name].specifier.contains(version), (env.name, name, version)
                checked += 1
    assert checked >= 10
