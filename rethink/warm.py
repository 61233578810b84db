"""Warm starts: one process imports torch and the pipeline once, then forks each local job.

A training job spends ~2.5 s importing torch, torch._dynamo (which torch.optim loads) and the
pipeline before it trains for a few seconds (docs/speed.md). For a local run, Snakemake's
`onstart` starts a server (`start_server`) that imports all of that and listens on a Unix
socket named by RETHINK_WARM_SOCKET. A job script calls `delegate(snakemake, __file__)` first:
it hands the server its standard streams, working directory, environment and `snakemake`
object, and the server forks a child that runs the script in the job's place. The script
waits, forwards the signals it gets, and exits with the child's status.

Without a server, or when it cannot serve this job exactly as a fresh process would (another
Python environment or checkout, other thread settings, a pipeline module edited since the
server imported it), `delegate` returns and the script runs as usual. The server never runs
a tensor operation or touches CUDA, so each child starts with untouched thread pools and
GPUs, and it quits when the Snakemake process that started it ends.
"""

import atexit
import logging
import os
import pickle
import runpy
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import rethink

SOCKET_VARIABLE = "RETHINK_WARM_SOCKET"
# What a server imports before it serves: all that training and kernel jobs import.
PRELOAD = ["torch", "torch._dynamo", "rethink.config", "rethink.jobs", "rethink.kernels",
           "rethink.train"]  # fmt: skip
PACKAGE = Path(rethink.__file__).parent

# Read by native libraries when they load, so a job must agree with the server on them (Snakemake
# sets them to the job's threads); the server starts with those of a one-thread job.
LOAD_TIME_VARIABLES = [
    "OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS",
]  # fmt: skip
HANDSHAKE_SECONDS = 60


def delegate(snakemake, script: str) -> None:
    """Run this job in a warm child and exit with its status; return if none can take it."""
    path = os.environ.get(SOCKET_VARIABLE)  # never set in a forked job: it runs its script
    if not path:
        return
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(HANDSHAKE_SECONDS)
    try:
        conn.connect(path)
        request = dict(
            script=str(Path(script).resolve()), snakemake=snakemake, cwd=os.getcwd(),
            environ=dict(os.environ), path=list(sys.path), prefix=sys.prefix,
            package=str(PACKAGE),
        )  # fmt: skip
        socket.send_fds(conn, [_framed(pickle.dumps(request))], [0, 1, 2])
        answer = _receive(conn)
    except OSError:  # no server (any more), or a stuck one: run here. A child forked
        answer = None  # meanwhile finds the connection closed and ends itself.
    if answer is None or answer["pid"] is None:
        conn.close()
        return
    conn.settimeout(None)
    pid = answer["pid"]
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda number, frame: _kill(pid, number))
    status = _receive(conn)
    if status is None:
        print(f"rethink.warm: job process {pid} ended without an exit status", file=sys.stderr)
        sys.exit(1)
    sys.exit(status["exit"])


def start_server(log_path: str) -> Callable[[], None]:
    """Start a server for this process's jobs, its messages in `log_path`; it stops when this
    process exits or the returned function is called. Jobs that start before it has imported
    everything wait for it."""
    directory = Path(tempfile.mkdtemp(prefix="rethink-warm-"))  # short: socket paths are
    path = directory / "socket"  # limited to ~100 characters
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "rethink.warm", str(path), str(os.getpid())],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
            env=os.environ | dict.fromkeys(LOAD_TIME_VARIABLES, "1"),
        )  # fmt: skip

    deadline = time.monotonic() + 10  # Python's start-up takes ~0.05 s; never hang a workflow
    while not path.exists() and server.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)

    def stop():
        atexit.unregister(stop)
        os.environ.pop(SOCKET_VARIABLE, None)
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:  # stuck in a long call: nothing of it is needed
            server.kill()
            server.wait()
        shutil.rmtree(directory, ignore_errors=True)  # if it did not clean up after itself

    atexit.register(stop)
    os.environ[SOCKET_VARIABLE] = str(path)
    return stop


def serve(path: str, parent: int) -> None:
    """Listen on `path`, import PRELOAD, then fork a child per request it can serve until the
    process `parent` is gone or SIGTERM comes; remove `path` and its directory, and exit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the jobs; this ends with them
    # Exit from the handler itself: an exception raised there mid-import can be swallowed by
    # the imported code, and Snakemake would wait for this process forever.
    signal.signal(signal.SIGTERM, lambda number, frame: _quit(path, 0))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)  # the first jobs wait here while the imports run
    status = 1
    try:
        for module in PRELOAD:
            __import__(module)
        loaded = _package_files()
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
        listener.settimeout(1.0)
        print(f"serving on {path} with {', '.join(PRELOAD)} imported", flush=True)
        _accept(listener, loaded, parent)
        status = 0
    except BaseException:
        traceback.print_exc()
    finally:  # in the server only: a child never returns from _run_child
        _quit(path, status)


def _quit(path: str, status: int) -> None:
    """Remove the socket and its directory and exit, without tearing torch down (a second)."""
    shutil.rmtree(Path(path).parent, ignore_errors=True)
    sys.stdout.flush()
    os._exit(status)


def _accept(listener: socket.socket, loaded: dict, parent: int) -> None:
    stale = False
    while not stale and os.getppid() == parent:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        with conn:
            conn.settimeout(HANDSHAKE_SECONDS)
            try:
                stale = _serve_one(conn, listener, loaded)
            except (OSError, EOFError, pickle.UnpicklingError):
                continue  # that job's script went away mid-request; it runs or failed alone


def _serve_one(conn: socket.socket, listener: socket.socket, loaded: dict) -> bool:
    """Fork a child for one request, or refuse it; True once the server's modules are stale."""
    message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    try:
        request = pickle.loads(_unframed(message, conn))
        reason = _refusal(request, loaded)
        if reason is None:
            pid = os.fork()
            if pid == 0:
                listener.close()
                _run_child(conn, fds, request)  # never returns
            print(f"{request['script']}: job process {pid}", flush=True)
            return False
        os.write(fds[2], f"rethink.warm: {reason}; this job starts cold\n".encode())
        print(f"{request['script']}: refused: {reason}", flush=True)
        conn.sendall(_framed(pickle.dumps({"pid": None})))
        return bool(_changed(loaded))
    finally:
        for fd in fds:
            os.close(fd)


def _refusal(request: dict, loaded: dict) -> str | None:
    """Why a child of this server would not run the job as a fresh process would, or None."""
    if request["prefix"] != sys.prefix:
        return f"the job runs in {request['prefix']}, the warm-start server in {sys.prefix}"
    if request["package"] != str(PACKAGE):
        return f"the job imports rethink from {request['package']}, the server from {PACKAGE}"
    differ = [v for v in LOAD_TIME_VARIABLES if request["environ"].get(v) != os.environ.get(v)]
    if differ:
        return f"the job's {', '.join(differ)} differ from the server's"
    changed = _changed(loaded)
    if changed:
        return f"{', '.join(changed)} changed since the server imported it; it stops serving"
    return None


def _changed(loaded: dict) -> list[str]:
    """The pipeline modules edited since the server imported them."""
    return [name for name, stamp in loaded.items() if _stamp(name) != stamp]


def _run_child(conn: socket.socket, fds: list[int], request: dict) -> None:
    """In the forked child: become the job, run its script, report its exit status, exit."""
    status = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # as in a fresh Python process
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["environ"])
        os.environ.pop(SOCKET_VARIABLE, None)
        sys.argv, sys.path[:] = [request["script"]], request["path"]
        conn.settimeout(None)
        conn.sendall(_framed(pickle.dumps({"pid": os.getpid()})))
        # The job's script process waits on this connection: if it is killed, so is the job.
        threading.Thread(target=_die_with, args=(conn,), daemon=True).start()
        status = _run_script(request["script"], request["snakemake"])
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        logging.shutdown()
        conn.sendall(_framed(pickle.dumps({"exit": status})))
    finally:
        os._exit(status)


def _run_script(script: str, snakemake) -> int:
    """Run `script` as Snakemake would; its exit status."""
    try:
        runpy.run_path(script, init_globals={"snakemake": snakemake}, run_name="__main__")
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        print(stop.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def _die_with(conn: socket.socket) -> None:
    while conn.recv(1):
        pass
    os.kill(os.getpid(), signal.SIGKILL)


def _kill(pid: int, number: int) -> None:
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass


def _package_files() -> dict:
    """Modification stamp of every pipeline module the server has imported."""
    return {
        module.__file__: _stamp(module.__file__)
        for module in list(sys.modules.values())
        if getattr(module, "__file__", None) and Path(module.__file__).is_relative_to(PACKAGE)
    }


def _stamp(path: str):
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _framed(payload: bytes) -> bytes:
    return struct.pack("!Q", len(payload)) + payload


def _unframed(first: bytes, conn: socket.socket) -> bytes:
    (size,) = struct.unpack("!Q", first[:8])
    payload = bytearray(first[8:])
    while len(payload) < size:
        chunk = conn.recv(size - len(payload))
        if not chunk:
            raise ConnectionError("the job's script went away mid-request")
        payload += chunk
    return bytes(payload)


def _receive(conn: socket.socket) -> dict | None:
    """One framed message, or None at end of stream."""
    head = b""
    while len(head) < 8:
        chunk = conn.recv(8 - len(head))
        if not chunk:
            return None
        head += chunk
    return pickle.loads(_unframed(head, conn))


if __name__ == "__main__":
    from rethink.warm import serve as serve_  # this module as jobs import it, not __main__

    serve_(sys.argv[1], int(sys.argv[2]))
