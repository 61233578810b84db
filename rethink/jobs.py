"""What every Snakemake script does around its one call: logging, and one-line errors."""

import logging
import sys
from collections.abc import Callable

from rethink import RethinkError


def run_job(log_path: str, work: Callable, *args, **kwargs):
    """Call `work(*args, **kwargs)` with logging to `log_path` and stderr.

    A RethinkError (bad input the user can fix) ends the job with its one-line message and
    exit status 1 instead of a traceback; anything else is a bug and keeps its traceback.
    """
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.FileHandler(log_path, mode="w"), logging.StreamHandler(sys.stderr)],
        force=True,
    )
    try:
        return work(*args, **kwargs)
    except RethinkError as err:
        logging.getLogger(work.__module__).error("%s", err)
        sys.exit(1)
