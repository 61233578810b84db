"""What every Snakemake script does around its one call: logging, and one-line errors."""

import logging
import signal
import sys
from collections.abc import Callable

from rethink import RethinkError
from rethink.training.run_lock import die_with_workflow
from rethink.workflow.gpus import gpu_claimed_for


def run_job(log_path: str, work: Callable, *args, gpus_for: str | None = None, **kwargs):
    """Call `work(*args, **kwargs)`, logging to `log_path`; for work on device `gpus_for`
    ("auto" or "cuda"), on a GPU claimed for it first (rethink.workflow.gpus).

    The log file gets everything, progress bars included (stderr points there); the terminal
    gets warnings and errors. A RethinkError (bad input the user can fix) ends the job with its
    one-line message and exit status 1; anything else is a bug and keeps its traceback. The job
    ends when the Snakemake that runs it does, however it ends (rethink.training.run_lock).
    """
    die_with_workflow()
    log_file = open(log_path, "w", buffering=1)  # line-buffered, open for the job's lifetime
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setLevel(logging.WARNING)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.StreamHandler(log_file), terminal],
        force=True,
    )
    sys.stderr = log_file
    try:
        with gpu_claimed_for(gpus_for or "cpu"):
            return work(*args, **kwargs)
    except RethinkError as err:
        logging.getLogger(work.__module__).error("%s", err)
        sys.exit(1)
    except KeyboardInterrupt:  # Ctrl-C may reach the job before Snakemake: the same outcome
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second one (forwarded) ends nothing new
        logging.getLogger(work.__module__).error(
            "interrupted; no output of this job was written (a training run keeps its last "
            "checkpoint): rerun snakemake to finish it"
        )
        sys.exit(130)
