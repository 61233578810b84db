"""What every Snakemake script does around its one call: logging, and one-line errors."""

import logging
import sys
from collections.abc import Callable

from rethink import RethinkError


def run_job(log_path: str, work: Callable, *args, **kwargs):
    """Call `work(*args, **kwargs)`, logging to `log_path`.

    The log file gets everything, progress bars included (stderr points there); the terminal
    gets warnings and errors. A RethinkError (bad input the user can fix) ends the job with its
    one-line message and exit status 1; anything else is a bug and keeps its traceback.
    """
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
        return work(*args, **kwargs)
    except RethinkError as err:
        logging.getLogger(work.__module__).error("%s", err)
        sys.exit(1)
