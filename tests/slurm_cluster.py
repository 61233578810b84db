"""A one-node SLURM cluster on localhost, for the tests of `--profile profiles/slurm`.

Debian's munge, MariaDB, slurmdbd, slurmctld and slurmd run as root from a scratch folder with
their own ports, keys, databases and state; of the machine's own folders only /run/munge (the
socket every Slurm command looks for) and /run/slurm/conf (slurmd's configless cache) are used.
Accounting goes through slurmdbd and MariaDB as on real clusters, so the SLURM executor plugin's
default `sacct` polling works as there. The node offers two fake GPUs: `--gpus=1` requests are
scheduled and set CUDA_VISIBLE_DEVICES as on a GPU node, while the jobs run on the CPU.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

PARTITION = "gpu-test"
ACCOUNT = "rethink-test"
CLUSTER = "rethink"
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")  # sacctmgr ignores AuthInfo=socket=...
SLURMD_CONF_CACHE = Path("/run/slurm/conf")
DB_PASSWORD = "rethink-test"  # a scratch database that listens on 127.0.0.1 only
PROGRAMS = [
    "munged", "mungekey", "mariadb-install-db", "mariadbd", "mariadb", "slurmdbd", "slurmctld",
    "slurmd", "sacctmgr", "sbatch", "sacct", "sinfo", "scancel",
]  # fmt: skip


def missing_programs() -> list[str]:
    return [name for name in PROGRAMS if not shutil.which(name, path=_search_path())]


@dataclass
class SlurmCluster:
    root: Path
    env: dict  # what a SLURM client (sbatch, sacct, snakemake) needs: SLURM_CONF and PATH
    partition: str = PARTITION
    account: str = ACCOUNT

    def accounted_jobs(self) -> list[dict]:
        """Every job slurmdbd recorded, oldest first: id, state, time limit, comment, ..."""
        fields = ["JobID", "JobName", "State", "ExitCode", "Elapsed", "Timelimit", "Comment"]
        out = _run(
            ["sacct", "--allusers", "--allocations", "--parsable2", "--noheader",
             f"--format={','.join(fields)}", "--starttime=2000-01-01"],
            self.env,
        ).stdout  # fmt: skip
        return [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines()]


@contextmanager
def local_slurm_cluster(root: Path, cpus: int = 2, memory_mb: int = 8000) -> Iterator[SlurmCluster]:
    """Start the cluster in folder `root` and yield it; every daemon it started is stopped on
    the way out, also when the body fails."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)  # munged refuses a key in a folder others can write to
    host = socket.gethostname().split(".")[0]
    ports = {name: _free_port() for name in ("slurmctld", "slurmd", "slurmdbd", "mariadb")}
    env = os.environ | {"SLURM_CONF": str(root / "slurm.conf"), "PATH": _search_path()}

    with ExitStack() as stack:
        if not os.path.lexists(SLURMD_CONF_CACHE):  # a link slurmd makes to its spool folder
            stack.callback(SLURMD_CONF_CACHE.unlink, missing_ok=True)

        def start(name: str, *command: str, ready: Callable[[], bool]) -> None:
            log = stack.enter_context(open(root / f"{name}.out", "w"))
            process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            stack.callback(_stop, process)
            _wait_for(name, ready, process, root / f"{name}.out")

        _start_munge(root, env, start)
        _start_mariadb(root, ports["mariadb"], env, start)
        _write_configs(root, host, ports, cpus, memory_mb)
        accounting_up = ["sacctmgr", "list", "cluster"]
        start("slurmdbd", "slurmdbd", "-D", ready=lambda: _succeeds(accounting_up, env))
        for entity in (
            ["cluster", CLUSTER],
            ["account", ACCOUNT, f"cluster={CLUSTER}"],
            ["user", "root", f"account={ACCOUNT}", f"cluster={CLUSTER}"],
        ):
            _run(["sacctmgr", "--immediate", "add", *entity], env)
        start("slurmctld", "slurmctld", "-D", "-i", ready=lambda: _succeeds(["sinfo"], env))
        # Configless, as on many clusters: slurmd fetches the config from slurmctld and caches
        # it in /run/slurm/conf, where `srun` inside a job finds it (the SLURM executor plugin
        # drops SLURM_CONF from the job step's environment).
        idle = ["sinfo", "--noheader", "--format=%T", f"--partition={PARTITION}"]
        start(
            "slurmd", "slurmd", "-D", "-N", host, f"--conf-server=127.0.0.1:{ports['slurmctld']}",
            ready=lambda: _run(idle, env, check=False).stdout.strip() == "idle",
        )  # fmt: skip
        try:
            yield SlurmCluster(root, env)
        finally:
            _run(["scancel", "--user=root"], env, check=False)


def _start_munge(root: Path, env: dict, start) -> None:
    key = root / "munge.key"
    MUNGE_SOCKET.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    _run(["mungekey", "--create", f"--keyfile={key}"], env)
    start(
        "munged", "munged", "--foreground", "--force", f"--key-file={key}",
        f"--socket={MUNGE_SOCKET}", f"--pid-file={root / 'munged.pid'}",
        f"--log-file={root / 'munged.log'}", f"--seed-file={root / 'munged.seed'}",
        ready=MUNGE_SOCKET.exists,
    )  # fmt: skip


def _start_mariadb(root: Path, port: int, env: dict, start) -> None:
    datadir, sock = root / "mysql", root / "mysql.sock"
    _run(["mariadb-install-db", f"--datadir={datadir}", "--user=root", "--skip-test-db"], env)
    client = ["mariadb", "--no-defaults", f"--socket={sock}", "--user=root"]
    start(
        "mariadb", "mariadbd", "--no-defaults", f"--datadir={datadir}", f"--socket={sock}",
        f"--port={port}", "--bind-address=127.0.0.1", "--user=root",
        f"--pid-file={root / 'mysql.pid'}", "--innodb-buffer-pool-size=64M",
        "--innodb-lock-wait-timeout=900",
        ready=lambda: _succeeds([*client, "--execute=SELECT 1"], env),
    )  # fmt: skip
    grant = (
        f"CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}';"
        "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
    )
    _run([*client, f"--execute={grant}"], env)


def _write_configs(root: Path, host: str, ports: dict, cpus: int, memory_mb: int) -> None:
    # Two fake GPUs: slurmd wants a character device per GPU, and never opens it.
    (root / "gres.conf").write_text(
        "".join(f"NodeName={host} Name=gpu File={dev}\n" for dev in ("/dev/null", "/dev/zero"))
    )
    (root / "slurm.conf").write_text(
        f"""\
ClusterName={CLUSTER}
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ports["slurmctld"]}
SlurmctldParameters=enable_configless
SlurmdPort={ports["slurmd"]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
KillWait=5
MinJobAge=60
MpiDefault=none
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={ports["slurmdbd"]}
AccountingStorageEnforce=associations
AccountingStoreFlags=job_comment
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} Gres=gpu:2 State=UNKNOWN
PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""
    )
    dbd_conf = root / "slurmdbd.conf"
    dbd_conf.write_text(
        f"""\
AuthType=auth/munge
DbdHost={host}
DbdAddr=127.0.0.1
DbdPort={ports["slurmdbd"]}
SlurmUser=root
PidFile={root}/slurmdbd.pid
LogFile={root}/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={ports["mariadb"]}
StorageUser=slurm
StoragePass={DB_PASSWORD}
StorageLoc=slurm_acct_db
"""
    )
    dbd_conf.chmod(0o600)  # slurmdbd refuses a config that others can read: it holds a password
    for folder in ("state", "spool"):
        (root / folder).mkdir(exist_ok=True)


def _search_path() -> str:
    return os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(command: list[str], env: dict, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, env=env, capture_output=True, text=True, check=check, timeout=120
    )


def _succeeds(command: list[str], env: dict) -> bool:
    try:
        return subprocess.run(command, env=env, capture_output=True, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _wait_for(
    name: str, ready: Callable[[], bool], process: subprocess.Popen, log: Path, timeout=60
) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            problem = "exited" if process.poll() is not None else f"not ready in {timeout} s"
            output = log.read_text()[-3000:]
            raise RuntimeError(f"{name} {problem} (logs: {log.parent}); its output ends:\n{output}")
        time.sleep(0.5)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the daemon and whatever it started, then SIGKILL what is left after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
            process.wait(wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
