"""Download one file with published checksums; never leave a partial file at the destination."""

import hashlib
import logging
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from rethink import RethinkError
from rethink.files import atomic_path

log = logging.getLogger(__name__)

ALGORITHMS = ("md5", "sha256")  # an archive's published digests, all checked before use
# Each mirror gets this long, plus the time the file takes at this slowest rate (bytes/s): a
# server that trickles bytes, each within the per-read timeout, still ends.
DEADLINE_BASE_S = 120
SLOWEST_BYTES_PER_S = 100_000


class DownloadError(RethinkError):
    """Every mirror failed, or what arrived does not match the published checksums."""


def download(
    urls: list[str],
    dest: str | os.PathLike,
    md5: str,
    sha256: str,
    size: int,
    timeout_s: float = 60,
    deadline_s: float | None = None,
) -> Path:
    """Fetch the first mirror that answers into `dest` and verify its size, md5 and sha256.

    HTTPS mirrors are tried before plain-HTTP ones, each group in the given order. Each read
    waits at most `timeout_s`, each mirror at most `deadline_s` in all (by default a time the
    size allows), and no mirror may send more than `size` bytes. The bytes go to a temporary
    file beside `dest` that is renamed only after both checksums match, so an interrupted,
    tampered or corrupt download never looks like a finished one.
    """
    dest = Path(dest)
    published = {"md5": md5, "sha256": sha256}
    if deadline_s is None:
        deadline_s = DEADLINE_BASE_S + size / SLOWEST_BYTES_PER_S
    failures = []
    for url in https_first(urls):
        try:
            with atomic_path(dest) as tmp:
                _check(_fetch(url, tmp, size, timeout_s, deadline_s), published, url)
            log.info("downloaded %s to %s (md5 and sha256 ok)", url, dest)
            return dest
        except (OSError, DownloadError) as err:  # URLError and IncompleteRead are OSErrors
            log.warning("%s: %s", url, err)
            failures.append(f"{url}: {_reason(err)}")
    raise DownloadError(
        f"could not download {dest.name} ({'; '.join(failures)}); check the network or "
        f"download it yourself and place it at {dest}, then rerun snakemake"
    )


def https_first(urls: list[str]) -> list[str]:
    """`urls` with every https:// mirror ahead of the others, each group in its order."""
    return sorted(urls, key=lambda url: not url.lower().startswith("https://"))


def verify_archive(path: str | os.PathLike, md5: str, sha256: str) -> None:
    """Raise unless the file at `path` has the published md5 and sha256 (catches files placed
    by hand)."""
    with open(path, "rb") as f:
        digests = _digests(iter(lambda: f.read(1 << 20), b""))
    try:
        _check(digests, {"md5": md5, "sha256": sha256}, str(path))
    except DownloadError as err:
        raise DownloadError(
            f"{err}; the file is truncated or not the right archive: delete it and rerun "
            "snakemake, or place a good copy there"
        ) from None


def _digests(blocks) -> dict[str, str]:
    hashes = {name: hashlib.new(name) for name in ALGORITHMS}
    for block in blocks:
        for h in hashes.values():
            h.update(block)
    return {name: h.hexdigest() for name, h in hashes.items()}


def _check(digests: dict[str, str], published: dict[str, str], what: str) -> None:
    for name in ALGORITHMS:
        if digests[name] != published[name].lower():
            raise DownloadError(
                f"{name} {digests[name]} of {what} does not match the published {published[name]}"
            )


def _fetch(url: str, tmp: Path, size: int, timeout_s: float, deadline_s: float) -> dict:
    """Stream `url` into `tmp`; return the digests of what arrived."""
    deadline = time.monotonic() + deadline_s
    with urllib.request.urlopen(url, timeout=timeout_s) as response, open(tmp, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        if total is not None and total != size:
            raise DownloadError(f"the server announces {total} bytes, not the published {size}")
        with tqdm(total=size, unit="B", unit_scale=True, desc=Path(url).name) as bar:
            digests = _digests(_written(response, out, bar, size, deadline, deadline_s))
    received = tmp.stat().st_size
    if received != size:  # urllib returns short reads silently
        raise DownloadError(f"incomplete download: received {received} of {size} bytes")
    return digests


def _written(response, out, bar, size: int, deadline: float, deadline_s: float):
    """The blocks of `response` as they come (read1: whatever has arrived, so that the deadline
    is checked between the bytes of a trickle), each written to `out` as it passes."""
    received = 0
    for block in iter(lambda: response.read1(1 << 20), b""):
        received += len(block)
        if received > size:
            raise DownloadError(f"the server sends more than the published {size} bytes")
        if time.monotonic() > deadline:
            raise DownloadError(
                f"not finished after {deadline_s:.0f} s ({received} of {size} bytes)"
            )
        out.write(block)
        bar.update(len(block))
        yield block


def _reason(err: Exception) -> str:
    if isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError):
        return str(err.reason)
    return str(err) or type(err).__name__
