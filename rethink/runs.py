"""A training run's identity: the five keys of one train_run job, the folder its files go in,
and back from that folder. Imports nothing heavy: planning and the result tables both use it.
"""

import dataclasses
from pathlib import PurePath
from typing import ClassVar


@dataclasses.dataclass(frozen=True)
class RunKey:
    dataset: str
    variant: str
    model: str
    regularizer: str
    seed: int

    # A run's place under each folder that holds one file or folder per run (results/runs,
    # logs/runs, results/benchmarks/runs), as Snakemake wildcards.
    PATTERN: ClassVar[str] = "{dataset}/{variant}/{model}/{regularizer}/seed{seed}"

    def path(self, root: str = "results/runs") -> str:
        """The run's folder under `root`, e.g. results/runs/mnist5k/true/mlp1x512/none/seed0."""
        return f"{root}/{self.PATTERN.format(**dataclasses.asdict(self))}"

    @classmethod
    def from_path(cls, run_dir: str | PurePath) -> "RunKey":
        """The key of the run stored in `run_dir` (any root before the five levels)."""
        *_, dataset, variant, model, regularizer, seed = PurePath(run_dir).parts
        number = seed.removeprefix("seed")
        if number == seed or not number.isdigit():
            raise ValueError(f"{run_dir}: not a run folder (…/{cls.PATTERN})")
        return cls(dataset, variant, model, regularizer, int(number))


CHECKPOINT_FILE = "checkpoint.pt"  # in a run's folder while it trains, and until registered
WEIGHTS_FILE = "weights.safetensors"  # initial and final weights (rethink.models.weights)
RUN_FIELDS = [field.name for field in dataclasses.fields(RunKey)]
RUN_DIR = f"results/runs/{RunKey.PATTERN}"  # rule train_run's outputs, as wildcards
