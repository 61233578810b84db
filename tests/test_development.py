"""The commands README's Development section shows work as written."""

import re
import shlex
import subprocess
import sys

import torch

from tests.conftest import REPO


def development_commands() -> list[str]:
    section = REPO.joinpath("README.md").read_text().split("## Development", 1)[1]
    block = re.search(r"```\n(.*?)```", section, re.DOTALL)[1]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_the_cuda_tests_run_in_one_process_and_say_why_they_skip():
    """`pytest -n 0 ...` (pyproject's addopts pass `-n auto`, so `-p no:xdist` cannot work), and
    `pytest -m cuda`, which on a machine without a GPU skips every test with its reason."""
    commands = development_commands()
    assert "pytest -n 0" in commands and "pytest -m cuda" in commands
    result = subprocess.run(
        [sys.executable, "-m", *shlex.split("pytest -n 0 -m cuda -rs -p no:cacheprovider")],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:]
    if not torch.cuda.is_available():
        assert "passed" not in result.stdout.splitlines()[-1]
        assert re.search(
            r"SKIPPED \[\d+\] tests/test_cuda\.py:\d+: needs a CUDA GPU", result.stdout
        )
