import contextlib
import gzip
import hashlib
import io
import pickle
import socket
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from rethink.data.datasets import DATASETS, build_dataset
from rethink.data.download import DownloadError, download, https_first


def test_mnist5k_is_a_stratified_deterministic_split(mnist5k):
    assert mnist5k.train.images.shape == (4000, 28, 28, 1)
    assert mnist5k.test.images.shape == (1000, 28, 28, 1)
    source = DATASETS["mnist5k"]
    assert (len(mnist5k.train.labels), len(mnist5k.test.labels)) == source.size
    assert mnist5k.train.images.shape[1:] == source.image_shape
    assert mnist5k.train.images.dtype == np.uint8
    assert np.bincount(mnist5k.test.labels).tolist() == [100] * 10
    assert np.bincount(mnist5k.train.labels).tolist() == [400] * 10
    again = build_dataset("mnist5k", [], {"seed": 0, "test_per_class": 100})
    np.testing.assert_array_equal(again.test.images, mnist5k.test.images)
    other = build_dataset("mnist5k", [], {"seed": 1, "test_per_class": 100})
    assert not np.array_equal(other.test.images, mnist5k.test.images)
    # Train and test are disjoint and together hold every one of the 5,000 digits.
    rows = [im.tobytes() for im in np.concatenate([mnist5k.train.images, mnist5k.test.images])]
    assert len(rows) == 5000
    assert mnist5k.attrs["seed"] == 0 and len(mnist5k.attrs["sha256"]) == 64


def test_mnist5k_files_are_shuffled_so_a_prefix_is_a_random_subset(mnist5k):
    """The CNN runs of the default study train on the first 256 training images and test on
    the first 256 test images: each prefix must hold the ten digits in proportion."""
    for labels in (mnist5k.train.labels, mnist5k.test.labels):
        counts = np.bincount(labels[:256], minlength=10)
        assert stats.chisquare(counts).pvalue > 1e-3, counts


# --- a small archive in the real CIFAR-10 format, and a local server that serves it --------


def cifar_like_archive(per_batch: int = 6) -> tuple[bytes, np.ndarray]:
    """A cifar-10-python.tar.gz with the real member names and pickles, `per_batch` images each."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6 * per_batch, 32, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        for i, name in enumerate(names):
            chunk = images[i * per_batch : (i + 1) * per_batch]
            batch = {
                b"data": chunk.transpose(0, 3, 1, 2).reshape(per_batch, -1),  # channel planes
                b"labels": [int(j % 10) for j in range(per_batch)],
            }
            add_member(tar, f"cifar-10-batches-py/{name}", pickle.dumps(batch))
        meta = {b"label_names": [f"class{i}".encode() for i in range(10)]}
        add_member(tar, "cifar-10-batches-py/batches.meta", pickle.dumps(meta))
    return buffer.getvalue(), images


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


class ArchiveServer(ThreadingHTTPServer):
    """Serves /good (the whole body), /truncated (announces the size, sends half), /trickle
    (the body a few bytes at a time, each well within a read timeout), /endless (no size
    announced, then bytes without end) and /announced-larger (a size above the body's)."""

    def __init__(self, body: bytes):
        self.body = body

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                served = self.server.body
                sizes = {"/good": len(served), "/truncated": len(served), "/trickle": len(served),
                         "/announced-larger": len(served) + 1, "/endless": None}  # fmt: skip
                if self.path not in sizes:
                    self.send_error(404)
                    return
                self.send_response(200)
                if sizes[self.path] is not None:
                    self.send_header("Content-Length", str(sizes[self.path]))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client gave up
                    if self.path == "/trickle":
                        for start in range(0, len(served), 16):
                            self.wfile.write(served[start : start + 16])
                            self.wfile.flush()
                            time.sleep(0.05)
                    elif self.path == "/endless":
                        while True:
                            self.wfile.write(bytes(1 << 16))
                    else:
                        cut = len(served) // 2 if self.path == "/truncated" else len(served)
                        self.wfile.write(served[:cut])

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


@pytest.fixture
def server():
    body, _ = cifar_like_archive()
    with ArchiveServer(body) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        yield httpd
        httpd.shutdown()


def digests(data: bytes) -> dict:
    """The md5, sha256 and size keyword arguments of `download` for `data`."""
    return {
        "md5": hashlib.md5(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/good"  # nothing listens there any more


def assert_nothing_left(dest: Path):
    assert not dest.exists()
    assert list(dest.parent.glob(f".{dest.name}*")) == []


def test_good_download_is_verified_and_converted(server, tmp_path):
    dest = tmp_path / "archives" / "cifar-10-python.tar.gz"
    download([server.url("/good")], dest, **digests(server.body), timeout_s=10)
    assert dest.read_bytes() == server.body
    _, images = cifar_like_archive()
    source = DATASETS["cifar10"]
    dataset = source.load([dest], {"seed": 0})
    assert dataset.train.images.shape == (30, 32, 32, 3)
    assert dataset.test.images.shape == (6, 32, 32, 3)
    np.testing.assert_array_equal(dataset.train.images, images[:30])  # channels last, exact
    np.testing.assert_array_equal(dataset.test.images, images[30:])
    assert dataset.classes[3] == "class3"


def test_downloaded_archive_becomes_a_dataset_file(server, tmp_path, monkeypatch):
    from dataclasses import replace

    from rethink.data.datasets import write_dataset_file
    from rethink.data.h5io import read_dataset

    source = DATASETS["cifar10"]
    archive = replace(source.archives[0], urls=(server.url("/good"),), **digests(server.body))
    small = replace(source, archives=(archive,), size=(30, 6))  # the archive's images
    monkeypatch.setitem(DATASETS, "cifar10", small)
    dest = tmp_path / archive.filename
    download(list(archive.urls), dest, archive.md5, archive.sha256, archive.size, timeout_s=10)
    write_dataset_file("cifar10", [dest], {"seed": 0}, tmp_path / "cifar10.h5")
    dataset = read_dataset(tmp_path / "cifar10.h5")
    assert dataset.train.images.shape == (30, 32, 32, 3) and dataset.train.images.dtype == np.uint8
    assert dataset.attrs["sha256"] == hashlib.sha256(server.body).hexdigest()
    assert dataset.attrs["source"] == server.url("/good") and dataset.attrs["seed"] == 0


@pytest.mark.parametrize("wrong", ["md5", "sha256"])
def test_checksum_mismatch_leaves_no_file(server, tmp_path, wrong):
    """Either digest alone refuses the file: an MD5 collision does not get past the SHA-256."""
    dest = tmp_path / "cifar-10-python.tar.gz"
    published = digests(server.body)
    published[wrong] = "0" * len(published[wrong])
    with pytest.raises(DownloadError, match=f"{wrong} [0-9a-f]+ of .* does not match") as info:
        download([server.url("/good")], dest, **published, timeout_s=10)
    assert f"place it at {dest}" in str(info.value)
    assert_nothing_left(dest)


def test_truncated_download_leaves_no_file(server, tmp_path):
    dest = tmp_path / "cifar-10-python.tar.gz"
    with pytest.raises(DownloadError, match="incomplete download: received"):
        download([server.url("/truncated")], dest, **digests(server.body), timeout_s=10)
    assert_nothing_left(dest)


def test_a_trickle_of_bytes_ends_at_the_deadline(server, tmp_path):
    """Every read gets bytes within its timeout; the download as a whole has a deadline."""
    dest = tmp_path / "cifar-10-python.tar.gz"
    with pytest.raises(DownloadError, match=r"not finished after 1 s \(\d+ of \d+ bytes\)"):
        download([server.url("/trickle")], dest, **digests(server.body), timeout_s=10, deadline_s=1)
    assert_nothing_left(dest)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/endless", "sends more than the published"),
        ("/announced-larger", "announces .* bytes, not the published"),
    ],
)
def test_no_more_than_the_published_size_is_accepted(server, tmp_path, path, message):
    dest = tmp_path / "cifar-10-python.tar.gz"
    with pytest.raises(DownloadError, match=message):
        download([server.url(path)], dest, **digests(server.body), timeout_s=10)
    assert_nothing_left(dest)


def test_server_down_says_how_to_place_the_file_by_hand(tmp_path):
    dest = tmp_path / "cifar-10-python.tar.gz"
    with pytest.raises(DownloadError, match="Connection refused") as info:
        download([closed_port_url()], dest, **digests(b""), timeout_s=5)
    message = str(info.value)
    assert "\n" not in message and f"place it at {dest}" in message
    assert_nothing_left(dest)


def test_next_mirror_is_tried_when_one_is_down(server, tmp_path):
    dest = tmp_path / "cifar-10-python.tar.gz"
    download([closed_port_url(), server.url("/good")], dest, **digests(server.body), timeout_s=10)
    assert dest.read_bytes() == server.body


def test_https_mirrors_are_tried_before_plain_http_ones():
    urls = ["http://a/x", "https://b/x", "HTTP://c/x", "HTTPS://d/x", "https://e/x"]
    assert https_first(urls) == [
        "https://b/x",
        "HTTPS://d/x",
        "https://e/x",
        "http://a/x",
        "HTTP://c/x",
    ]
    for source in DATASETS.values():
        for archive in source.archives:
            assert list(archive.urls) == https_first(archive.urls), archive.filename
            assert archive.urls[0].startswith("https://"), archive.filename


def test_every_archive_pins_an_md5_and_a_sha256():
    archives = [a for source in DATASETS.values() for a in source.archives]
    assert len(archives) == 5  # CIFAR-10's tarball and MNIST's four files
    for archive in archives:
        assert len(archive.md5) == 32 and int(archive.md5, 16) >= 0, archive.filename
        assert len(archive.sha256) == 64 and int(archive.sha256, 16) >= 0, archive.filename
    assert len({a.sha256 for a in archives}) == len(archives)


def test_a_wrong_archive_placed_by_hand_is_caught_before_conversion(tmp_path):
    dest = tmp_path / "cifar-10-python.tar.gz"
    body, _ = cifar_like_archive()
    dest.write_bytes(body)  # a valid archive, but not the published one
    with pytest.raises(DownloadError, match="md5 .* does not match the published .* delete it"):
        build_dataset("cifar10", [dest], {"seed": 0})


def idx_gz(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def test_mnist_idx_files_convert_to_the_common_layout(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [
        rng.integers(0, 256, (20, 28, 28)),
        rng.integers(0, 10, 20),
        rng.integers(0, 256, (5, 28, 28)),
        rng.integers(0, 10, 5),
    ]
    paths = []
    for archive, array in zip(DATASETS["mnist"].archives, arrays, strict=True):
        paths.append(tmp_path / archive.filename)
        paths[-1].write_bytes(idx_gz(array))
    dataset = DATASETS["mnist"].load(paths, {"seed": 0})
    assert dataset.train.images.shape == (20, 28, 28, 1)
    np.testing.assert_array_equal(dataset.train.images[..., 0], arrays[0])
    np.testing.assert_array_equal(dataset.test.labels, arrays[3])
    assert dataset.test.labels.dtype == np.int64
