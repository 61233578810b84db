"""Download one file with a published checksum; never leave a partial file at the destination."""

import hashlib
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from rethink import RethinkError
from rethink.files import atomic_path, file_digest

log = logging.getLogger(__name__)


class DownloadError(RethinkError):
    """Every mirror failed, or what arrived does not match the published checksum."""


def download(urls: list[str], dest: str | os.PathLike, md5: str, timeout_s: float = 60) -> Path:
    """Fetch the first mirror that answers into `dest` and verify its md5.

    The bytes go to a temporary file beside `dest` that is renamed only after the checksum
    matches, so an interrupted or corrupt download never looks like a finished one.
    """
    dest = Path(dest)
    failures = []
    for url in urls:
        try:
            with atomic_path(dest) as tmp:
                got = _fetch(url, tmp, timeout_s)
                if got != md5:
                    raise DownloadError(f"md5 {got} of {url} does not match the published {md5}")
            log.info("downloaded %s to %s (md5 ok)", url, dest)
            return dest
        except (OSError, DownloadError) as err:  # URLError and IncompleteRead are OSErrors
            log.warning("%s: %s", url, err)
            failures.append(f"{url}: {_reason(err)}")
    raise DownloadError(
        f"could not download {dest.name} ({'; '.join(failures)}); check the network or "
        f"download it yourself and place it at {dest}, then rerun snakemake"
    )


def verify_md5(path: str | os.PathLike, md5: str) -> None:
    """Raise unless the file at `path` has the published md5 (catches files placed by hand)."""
    got = file_digest(path, "md5")
    if got != md5:
        raise DownloadError(
            f"{path}: md5 {got} does not match the published {md5}; the file is truncated or "
            "not the right archive: delete it and rerun snakemake, or place a good copy there"
        )


def _fetch(url: str, tmp: Path, timeout_s: float) -> str:
    digest = hashlib.md5()
    with urllib.request.urlopen(url, timeout=timeout_s) as response, open(tmp, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        received = 0
        with tqdm(total=total, unit="B", unit_scale=True, desc=Path(url).name) as bar:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                digest.update(block)
                received += len(block)
                bar.update(len(block))
    if total is not None and received != total:  # urllib returns short reads silently
        raise DownloadError(f"incomplete download: received {received} of {total} bytes")
    return digest.hexdigest()


def _reason(err: Exception) -> str:
    if isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError):
        return str(err.reason)
    return str(err) or type(err).__name__
