"""Download one file with published checksums; never leave a partial file at the destination."""

import hashlib
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from rethink import RethinkError
from rethink.files import atomic_path

log = logging.getLogger(__name__)

ALGORITHMS = ("md5", "sha256")  # an archive's published digests, all checked before use


class DownloadError(RethinkError):
    """Every mirror failed, or what arrived does not match the published checksums."""


def download(
    urls: list[str], dest: str | os.PathLike, md5: str, sha256: str, timeout_s: float = 60
) -> Path:
    """Fetch the first mirror that answers into `dest` and verify its md5 and sha256.

    HTTPS mirrors are tried before plain-HTTP ones, each group in the given order. The bytes go
    to a temporary file beside `dest` that is renamed only after both checksums match, so an
    interrupted, tampered or corrupt download never looks like a finished one.
    """
    dest = Path(dest)
    published = {"md5": md5, "sha256": sha256}
    failures = []
    for url in https_first(urls):
        try:
            with atomic_path(dest) as tmp:
                _check(_fetch(url, tmp, timeout_s), published, url)
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


def _fetch(url: str, tmp: Path, timeout_s: float) -> dict[str, str]:
    """Stream `url` into `tmp`; return the digests of what arrived."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response, open(tmp, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=Path(url).name) as bar:
            digests = _digests(_written(response, out, bar))
    received = tmp.stat().st_size
    if total is not None and received != total:  # urllib returns short reads silently
        raise DownloadError(f"incomplete download: received {received} of {total} bytes")
    return digests


def _written(response, out, bar):
    """The blocks of `response`, each written to `out` as it passes."""
    for block in iter(lambda: response.read(1 << 20), b""):
        out.write(block)
        bar.update(len(block))
        yield block


def _reason(err: Exception) -> str:
    if isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError):
        return str(err.reason)
    return str(err) or type(err).__name__
