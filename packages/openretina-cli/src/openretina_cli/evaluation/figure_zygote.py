"""A process, forked when a training command starts, that has matplotlib loaded and forks the
report's figure drawers when the run asks for them.

Importing matplotlib costs a run about 0.5 s after training (issue 24) and ~30 MiB at its memory
peak; imported at start-up it would sit on training's peak. Forked before torch or any thread has
started, this process imports it on the core that the run leaves idle while it reads the data and
trains, then waits. The run sends each batch of figures as plain data (`figure_jobs.FigureCall`,
pickled) with one pipe per drawer; the drawers write their figures' paths and notes straight to
the run (`figure_jobs` reads them and draws here whatever they did not deliver). The run itself
never imports matplotlib.

Nothing outlives the run: the zygote exits when its socket closes (the run ended, or died) and is
killed by the kernel when the run dies; its drawers are killed when it dies; none of them runs
exit handlers.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import pickle
import select
import signal
import socket
import struct
import sys
import threading
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

FIGURES = "openretina_cli.evaluation.figures"
_HEADER = struct.Struct("<Q")  # the length of the pickled request that follows
_PID = struct.Struct("<q")
REPLY_TIMEOUT_S = 60.0  # its import may still be running when the first request comes

_current: Zygote | None = None


class Zygote:
    """The run's side: the zygote's pid and the socket requests go through."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid, self.sock = pid, sock
        self.owner = os.getpid()  # a forked copy of the run must not talk to it
        self.lock = threading.Lock()  # one request at a time on the socket

    def start_drawers(self, groups: Sequence[Sequence[tuple[int, Any]]]) -> list[tuple[int, int]] | None:
        """Fork one drawer per group of (index, picklable job) in the zygote; per group, (pid, the
        read end of the pipe its results come on) (pid 0: it did not start, the pipe is closed).
        None when the jobs cannot be pickled, or the zygote does not answer (it is then stopped)."""
        try:
            payload = pickle.dumps([list(group) for group in groups], protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # a job that is not plain data: the caller draws it some other way
            return None
        pipes = [os.pipe() for _ in groups]
        try:
            with self.lock:
                socket.send_fds(self.sock, [_HEADER.pack(len(payload))], [w for _, w in pipes])
                self.sock.sendall(payload)
                del payload
                reply = _receive_exactly(self.sock, _PID.size * len(groups), REPLY_TIMEOUT_S)
        except OSError:
            reply = None
        finally:
            for _, write_end in pipes:
                os.close(write_end)
        if reply is None:
            for read_end, _ in pipes:
                os.close(read_end)
            stop()
            return None
        pids = [_PID.unpack_from(reply, i * _PID.size)[0] for i in range(len(groups))]
        return [(pid, read_end) for pid, (read_end, _) in zip(pids, pipes, strict=True)]

    def stop(self) -> None:
        """End the zygote (its drawers die with it) and reap it."""
        self.sock.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def start(module: str = FIGURES) -> Zygote | None:
    """Fork the zygote, which imports `module`; call it before torch or any other thread starts,
    and only where `figure_jobs.can_fork()`. None when the fork fails."""
    global _current
    if current() is not None:
        return _current
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    parent = os.getpid()
    try:
        with warnings.catch_warnings():  # Python >= 3.12 warns about forking a threaded process (a
            warnings.simplefilter("ignore", DeprecationWarning)  # caller's, in tests): the zygote
            pid = os.fork()  # runs no other thread and never touches the run's locks or torch
    except OSError:
        ours.close()
        theirs.close()
        return None
    if pid == 0:
        ours.close()
        _serve(theirs, module, parent)
    theirs.close()
    _current = Zygote(pid, ours)
    return _current


def current() -> Zygote | None:
    """The zygote this process started, when it is running (None in a forked copy of it)."""
    return _current if _current is not None and _current.owner == os.getpid() else None


def stop() -> None:
    global _current
    if current() is not None:
        zygote, _current = _current, None
        zygote.stop()


def _serve(sock: socket.socket, module: str, parent: int) -> NoReturn:
    try:
        gc.disable()  # never finalise the run's objects here (open files would flush twice)
        _die_with(parent)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the run's to handle
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # drawers are reaped by the kernel
        with contextlib.suppress(Exception):  # errors show when the run draws the figure itself
            importlib.import_module(module)
        while True:
            request = _next_request(sock)
            if request is None:
                break
            payload, pipes = request
            try:
                groups = pickle.loads(payload)
            except Exception:
                groups = []
            pids = [
                _fork_drawer(groups[i], pipes[i], pipes, sock) if i < len(groups) else 0
                for i in range(len(pipes))
            ]
            for pipe in pipes:
                os.close(pipe)
            sock.sendall(b"".join(_PID.pack(pid) for pid in pids))
    finally:
        os._exit(0)


def _fork_drawer(group: list[tuple[int, Any]], pipe: int, pipes: list[int], sock: socket.socket) -> int:
    zygote = os.getpid()
    try:
        pid = os.fork()
    except OSError:
        return 0
    if pid == 0:
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _die_with(zygote)
            sock.close()
            for other in pipes:  # the other drawers' pipes: each ends when its own drawer does
                if other != pipe:
                    os.close(other)
            jobs = dict(group)
            send_results(pipe, draw_quietly(jobs, sorted(jobs)))
        finally:
            os._exit(0)
    return pid


def _next_request(sock: socket.socket) -> tuple[bytes, list[int]] | None:
    """The next pickled request and its pipes; None when the run closed the socket."""
    try:
        head, pipes, _, _ = socket.recv_fds(sock, _HEADER.size, 64)
    except OSError:
        return None
    if not head:
        return None
    rest = _receive_exactly(sock, _HEADER.size - len(head), None)
    if rest is None:
        return None
    (length,) = _HEADER.unpack(head + rest)
    payload = _receive_exactly(sock, length, None)
    return None if payload is None else (payload, list(pipes))


def _receive_exactly(sock: socket.socket, size: int, timeout_s: float | None) -> bytes | None:
    chunks, left = [], size
    while left:
        if timeout_s is not None and not select.select([sock], [], [], timeout_s)[0]:
            return None
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _die_with(parent: int) -> None:
    """Ask the kernel to kill this process when its parent ends (Linux's PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it ended before that took effect
        os._exit(0)


def draw_quietly(jobs: Mapping[int, Any] | Sequence[Any], indices: list[int]) -> dict[int, list[object]]:
    """What a helper sends back: per job drawn, its path and notes (`figure_jobs.FigureJob`s)."""
    delivered: dict[int, list[object]] = {}
    for index in indices:
        notes: list[str] = []
        try:
            path = jobs[index].draw(notes)
        except Exception:  # left out: the parent draws it again and reports the error itself
            continue
        delivered[index] = [None if path is None else str(path), notes]
    return delivered


def send_results(pipe: int, delivered: dict[int, list[object]]) -> None:
    """Write `draw_quietly`'s results to `pipe` as JSON and close it (end of file: all sent)."""
    payload = memoryview(json.dumps(delivered).encode())
    while payload:
        payload = payload[os.write(pipe, payload) :]
    os.close(pipe)
