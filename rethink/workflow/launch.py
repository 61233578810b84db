"""Starting a training run (rethink.training.loop) on its processes.

One process (nodes = gpus_per_node = 1): in the job's own process. One node: `torchrun --standalone`
with gpus_per_node processes, on GPUs the job claims as a one-process run claims its GPU
(rethink.workflow.gpus). Several nodes, inside a SLURM allocation: `srun` starts one torchrun per
node, and torchrun starts that node's processes. The job's own process, on the first node, hosts the
rendezvous store on a port the kernel picks while binding it, so no other program can take the port
between its choice and its use; torchrun's c10d rendezvous ranks the nodes. The workers run
`python -m rethink.workflow.launch`, this module's command line, and append to the job's log
(process 0 logs everything, the others their warnings and errors).

Every process dies with the one that started it: torchrun with the job (SIGTERM, on which it
stops its workers), each worker with its torchrun (SIGKILL: torch starts workers in sessions of
their own, out of reach of a signal to the job's process group).
"""

import argparse
import contextlib
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

import torch.distributed as dist

from rethink import RethinkError
from rethink.training.loop import train_run
from rethink.training.run_lock import die_with_parent
from rethink.training.settings import RunConfig
from rethink.workflow.gpus import gpu_claimed_for

log = logging.getLogger(__name__)


class LaunchError(RethinkError):
    """The processes of a distributed run did not finish."""


def worker_arguments(
    variant_path: str, run_dir: str, config: RunConfig, log_path: str, source_path=None
):
    source = ["--source", source_path] if source_path else []
    return [
        "-m", "rethink.workflow.launch", "--variant", variant_path, "--run-dir", str(run_dir),
        "--job-log", log_path, "--config", json.dumps(dataclasses.asdict(config)), *source,
    ]  # fmt: skip


def command(
    variant_path: str,
    run_dir: str,
    config: RunConfig,
    log_path: str,
    rendezvous: str = "",
    source_path: str | None = None,
) -> list[str]:
    """The command line that starts every process of the run; `rendezvous` (host:port of the
    store) for a run on several nodes."""
    per_node = config.gpus_per_node
    per_process = dataclasses.replace(config, threads=max(1, config.threads // per_node))
    worker = worker_arguments(variant_path, run_dir, per_process, log_path, source_path)
    torchrun = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={per_node}"]
    if config.nodes == 1:
        return [*torchrun, "--standalone", "--nnodes=1", *worker]
    nodes = [
        f"--nnodes={config.nodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={rendezvous}",
        f"--rdzv-id={os.environ.get('SLURM_JOB_ID', 'rethink')}", "--rdzv-conf=is_host=0",
    ]  # fmt: skip
    return [
        "srun", f"--ntasks={config.nodes}", f"--cpus-per-task={config.threads}",
        "--kill-on-bad-exit=1", *torchrun, *nodes, *worker,
    ]  # fmt: skip


def train_job(
    variant_path: str, run_dir: str, config: RunConfig, log_path: str, source_path=None
) -> dict:
    """Train the run on its processes, each on a GPU of its own where it trains on GPUs;
    return its summary. `source_path`: the variant's source dataset (rethink.training.loop)."""
    if config.processes == 1:
        with gpu_claimed_for(config.device):
            return train_run(variant_path, run_dir, config, source_path)
    if config.nodes > 1 and "SLURM_JOB_ID" not in os.environ:
        raise LaunchError(
            f"{run_dir}: training.nodes is {config.nodes}: a run on several nodes starts inside a "
            "SLURM allocation (snakemake --profile slurm); set nodes: 1 for a local run"
        )
    with _processes_context(config) as rendezvous, open(log_path, "a") as out:
        argv = command(variant_path, run_dir, config, log_path, rendezvous, source_path)
        log.info("%s: starting %d processes: %s", run_dir, config.processes, shlex.join(argv[:14]))
        # torchrun stops its workers on SIGTERM: sent to it when this process dies, even by SIGKILL
        child = subprocess.Popen(
            argv, stdout=out, stderr=out, preexec_fn=lambda: die_with_parent(signal.SIGTERM)
        )
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


@contextlib.contextmanager
def _processes_context(config: RunConfig):
    """What the run's processes need while they run: on one node, its GPUs claimed; on several,
    the rendezvous store, whose host:port it yields."""
    if config.nodes == 1:
        with gpu_claimed_for(config.device, config.gpus_per_node):
            yield ""
        return
    host = socket.gethostname()
    # Port 0: the kernel picks a free port as it binds it; the store listens until the run ends.
    store = dist.TCPStore(host, 0, is_master=True, wait_for_workers=False, multi_tenant=True)
    try:
        yield f"{host}:{store.port}"
    finally:
        del store


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="One process of a training run.")
    for name in ("--variant", "--run-dir", "--job-log", "--config"):
        parser.add_argument(name, required=True)
    parser.add_argument("--source")
    args = parser.parse_args(argv)
    die_with_parent(signal.SIGKILL)  # torchrun: a worker outliving it would train on alone
    rank = int(os.environ.get("RANK", 0))
    handler = logging.FileHandler(args.job_log)
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s %(levelname)s rank {rank} %(name)s: %(message)s",
        handlers=[handler],
        force=True,
    )
    try:
        config = RunConfig(**json.loads(args.config))
        train_run(args.variant, args.run_dir, config, args.source)
    except RethinkError as err:
        logging.getLogger(__name__).error("%s", err)
        sys.exit(1)


if __name__ == "__main__":
    main()
