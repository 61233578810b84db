"""Starting a streamed run (rethink.distributed) on its processes.

One process (nodes = gpus_per_node = 1): in the job's own process. One node: `torchrun
--standalone` with gpus_per_node processes. Several nodes, inside a SLURM allocation: `srun`
starts one torchrun per node (its task number is its node rank), and torchrun starts that
node's processes; the first node, where the job's batch script runs, hosts the rendezvous.
The workers run `python -m rethink.launch`, this module's command line, and append to the
job's log (process 0 logs everything, the others their warnings and errors).
"""

import argparse
import ctypes
import dataclasses
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

from rethink import RethinkError
from rethink.distributed import train_streamed
from rethink.gpus import gpu_claimed_for
from rethink.train import RunConfig

log = logging.getLogger(__name__)


class LaunchError(RethinkError):
    """The processes of a distributed run did not finish."""


def worker_arguments(variant_path: str, run_dir: str, config: RunConfig, log_path: str):
    return [
        "-m", "rethink.launch", "--variant", variant_path, "--run-dir", str(run_dir),
        "--job-log", log_path, "--config", json.dumps(dataclasses.asdict(config)),
    ]  # fmt: skip


def command(variant_path: str, run_dir: str, config: RunConfig, log_path: str) -> list[str]:
    """The command line that starts every process of the run."""
    per_node = config.gpus_per_node
    per_process = dataclasses.replace(config, threads=max(1, config.threads // per_node))
    worker = worker_arguments(variant_path, run_dir, per_process, log_path)
    torchrun = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={per_node}"]
    if config.nodes == 1:
        return [*torchrun, "--standalone", "--nnodes=1", *worker]
    rendezvous = [
        f"--nnodes={config.nodes}", f"--master-addr={socket.gethostname()}",
        f"--master-port={_free_port()}",
    ]  # fmt: skip
    # each task's node rank is its SLURM task number, which only the task's shell knows
    node = (
        f'{shlex.join([*torchrun, *rendezvous])} --node-rank="$SLURM_PROCID" {shlex.join(worker)}'
    )
    return [
        "srun", f"--ntasks={config.nodes}", f"--cpus-per-task={config.threads}",
        "--kill-on-bad-exit=1", "bash", "-c", f"exec {node}",
    ]  # fmt: skip


def train_job(variant_path: str, run_dir: str, config: RunConfig, log_path: str) -> dict:
    """Train the run on its processes; return its summary."""
    if config.processes == 1:
        with gpu_claimed_for(config.device):  # a GPU of its own, as rethink.train's runs
            return train_streamed(variant_path, run_dir, config)
    if config.nodes > 1 and "SLURM_JOB_ID" not in os.environ:
        raise LaunchError(
            f"{run_dir}: training.nodes is {config.nodes}: a run on several nodes starts inside a "
            "SLURM allocation (snakemake --profile slurm); set nodes: 1 for a local run"
        )
    argv = command(variant_path, run_dir, config, log_path)
    log.info("%s: starting %d processes: %s", run_dir, config.processes, shlex.join(argv[:12]))
    with open(log_path, "a") as out:
        child = subprocess.Popen(argv, stdout=out, stderr=out, preexec_fn=_die_with_parent)
        forwarded = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)  # to torchrun or srun, which
        previous = {sig: signal.getsignal(sig) for sig in forwarded}  # stop their processes
        try:
            for sig in forwarded:
                signal.signal(sig, lambda number, _: child.send_signal(number))
            status = child.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if status:
        raise LaunchError(f"{run_dir}: a process of the distributed run failed (exit {status})")
    return json.loads((Path(run_dir) / "summary.json").read_text())


def _die_with_parent() -> None:
    """In the child: SIGTERM when the job's process dies, even by SIGKILL (Linux)."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="One process of a streamed training run.")
    for name in ("--variant", "--run-dir", "--job-log", "--config"):
        parser.add_argument(name, required=True)
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", 0))
    handler = logging.FileHandler(args.job_log)
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s %(levelname)s rank {rank} %(name)s: %(message)s",
        handlers=[handler],
        force=True,
    )
    try:
        train_streamed(args.variant, args.run_dir, RunConfig(**json.loads(args.config)))
    except RethinkError as err:
        logging.getLogger(__name__).error("%s", err)
        sys.exit(1)


if __name__ == "__main__":
    main()
