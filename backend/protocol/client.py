"""Start the backend worker as a child process and talk to it (standard library only).

Runs inside Blender's Python (copied into the add-on) and in the CLI/tests.
The child is ``<python> -u -m backend.worker``; its stdout carries protocol
lines, read by a reader thread into a queue; its stderr is appended to
``log_path`` (also passed as ``FACEKEY_LOG``).

* UI: ``submit`` a request, then drain :meth:`BackendClient.poll` from a timer;
  it never blocks.
* Headless: :meth:`BackendClient.wait` blocks (no busy waiting) until the
  result, an error, a timeout or the death of the process.

A dead backend always surfaces as an ``error`` message (code
``backend_died``, or ``cancelled`` for requests the user cancelled), so
nothing waits forever.  ``cancel`` asks the worker to stop and kills it if the
request has not ended within ``kill_after`` seconds.
"""
from __future__ import annotations

import collections
import contextlib

import itertools
import os
import queue
import subprocess
import threading
import time
from typing import Callable, Optional

from .errors import FaceKeyError
from .messages import PROTOCOL_VERSION, Progress, encode, read_messages

__all__ = ["BackendClient", "SETUP_HINT", "DROPPED_ENV"]

SETUP_HINT = "Open Preferences > Add-ons > FaceKey > Set up backend, or point it at an existing environment."
#: Inherited variables that would make the backend's Python load Blender's standard library (or another
#: install's packages): Blender's own Python ignores them, a child Python obeys them.
DROPPED_ENV = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONEXECUTABLE")
_TAIL_LINES = 15


class BackendClient:
    """One backend worker process.

    Args:
        python: the backend environment's Python executable.
        log_path: file the worker's stderr and logging are appended to.
        args: arguments after ``python -u`` (default ``["-m", "backend.worker"]``).
        env: extra environment variables for the child (``PYTHONHOME`` and
            ``PYTHONPATH`` are not inherited unless given here).
        cwd: working directory of the child.
    """

    def __init__(self, python: str, log_path: str, *, args: Optional[list[str]] = None,
                 env: Optional[dict] = None, cwd: Optional[str] = None):
        self.python = os.fspath(python)
        self.log_path = os.fspath(log_path)
        self.args = list(args) if args is not None else ["-m", "backend.worker"]
        self.env = dict(env or {})
        self.cwd = cwd
        self.hello: Optional[dict] = None
        self._proc: Optional[subprocess.Popen] = None
        self._log_file = None
        self._log_offset = 0
        self._inbox: queue.Queue = queue.Queue()
        self._deferred: list[dict] = []
        self._lock = threading.RLock()
        self._send_lock = threading.Lock()
        self._outstanding: dict[str, str] = {}  # request id -> op
        self._cancelled: set[str] = set()
        self._closing = False
        self._exited = threading.Event()
        self._reader: Optional[threading.Thread] = None
        self._ids = itertools.count(1)
        self._hello_deadline = float("inf")
        self._unsent: list[str] = []        # lines written before a launched worker's hello, sent after it
        self._hello_seen = False            # the reader thread saw a hello (the worker got as far as serving)

    # -- life cycle -------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        """True while the child process runs."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 60.0) -> dict:
        """Spawn the worker and wait for its ``hello``; return the hello message (headless runs, tests).

        Raises ``backend_missing`` (no such Python, or it exits before saying
        hello: the message holds the log's last lines), ``backend_timeout``
        (no hello within ``timeout`` s; the child is killed) or ``protocol``
        (a different protocol version).
        """
        self.launch(timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self._inbox.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                self.close(timeout=0.0)
                raise FaceKeyError(
                    "backend_timeout", f"The backend did not start within {timeout:g} s.",
                    f"The backend may be stuck importing its libraries; see the log {self.log_path}. "
                    + SETUP_HINT) from None
            if msg["type"] == "hello":
                break
            if msg["type"] == "error" and msg.get("code") in ("backend_died", "backend_missing"):
                self.close()
                raise FaceKeyError("backend_missing", "The backend exited before it started:\n" + self.log_tail(),
                                   SETUP_HINT)
            self._deferred.append(msg)
        err = self._take_hello(msg)
        if err is not None:
            raise err
        return msg

    def _take_hello(self, msg: dict) -> Optional[FaceKeyError]:
        """Keep the worker's ``hello`` and send what was submitted before it; the error (the worker killed,
        nothing sent to it) when it speaks another protocol."""
        self.hello = msg
        if msg.get("protocol") != PROTOCOL_VERSION:
            self._unsent = []
            self.close(timeout=0.0)
            return FaceKeyError("protocol", f"The backend speaks protocol {msg.get('protocol')!r}, "
                                f"this add-on speaks {PROTOCOL_VERSION}.", "Run Set up backend again to update it.")
        unsent, self._unsent = self._unsent, []
        for line in unsent:
            self._send(line)
        return None

    def _hello_in(self, batch: list[dict]) -> list[dict]:
        """``batch`` with the launched worker's hello taken (:meth:`_take_hello`): just its protocol error
        when it speaks another protocol (nothing it said is used), a ``backend_timeout`` error past the
        hello's deadline (the worker killed)."""
        if self.hello is not None or self._proc is None:
            return batch
        hello = next((m for m in batch if m.get("type") == "hello"), None)
        if hello is not None:
            err = self._take_hello(hello)
            return batch if err is None else [{"type": "error", "id": None, **err.to_dict()}]
        if time.monotonic() > self._hello_deadline and self.alive:
            self.close(timeout=0.0)
            return batch + [{"type": "error", "id": None, **FaceKeyError(
                "backend_timeout", "The backend did not start in time.",
                f"The backend may be stuck importing its libraries; see the log {self.log_path}. "
                + SETUP_HINT).to_dict()}]
        return batch

    def launch(self, timeout: float = 60.0) -> None:
        """Spawn the worker and return at once: requests may be submitted before it says ``hello`` (they
        wait in the pipe), so the caller (Blender's UI) never blocks on the ~5 s start.  :meth:`poll` takes
        the hello when it comes (``self.hello``), and yields a ``backend_timeout`` error (the child killed)
        if none came within ``timeout`` s, a ``protocol`` error for another protocol version.

        Raises ``backend_missing`` (no such Python, or it cannot run), ``write_failed`` (the log) or
        ``bad_argument`` (started already).
        """
        if self._proc is not None:
            raise FaceKeyError("bad_argument", "This backend client was already started.",
                               "Create a new BackendClient to start another backend.")
        if not os.path.isfile(self.python):
            raise FaceKeyError("backend_missing", f"The backend Python {self.python} does not exist.", SETUP_HINT)
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.log_path)), exist_ok=True)
            self._log_file = open(self.log_path, "ab")
            self._log_file.write(f"\n=== FaceKey backend start {time.strftime('%Y-%m-%d %H:%M:%S')}: "
                                 f"{self.python} -u {' '.join(self.args)} ===\n".encode())
            self._log_file.flush()
        except OSError as e:
            raise FaceKeyError("write_failed", f"The backend log {self.log_path} cannot be written: "
                               f"{e.strerror or e}.", "Set a log file you can write to in the add-on's "
                               "preferences (or free some disk space).") from e
        self._log_offset = self._log_file.tell()
        env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
        env.update(self.env)
        env["FACEKEY_LOG"] = os.path.abspath(self.log_path)
        env["PYTHONUNBUFFERED"] = "1"
        try:
            self._proc = subprocess.Popen(
                [self.python, "-u", *self.args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self._log_file, env=env, cwd=self.cwd)
        except OSError as e:
            self._log_file.close()
            raise FaceKeyError("backend_missing", f"Could not run the backend Python {self.python}: {e}.",
                               SETUP_HINT) from e
        self._reader = threading.Thread(target=self._read_stdout, name="facekey-backend-reader", daemon=True)
        self._reader.start()
        self._hello_deadline = time.monotonic() + timeout

    def close(self, timeout: float = 2.0) -> None:
        """Ask the worker to shut down; kill it if it has not exited within ``timeout`` s."""
        if self._proc is None:
            return
        with self._lock:
            self._closing = True
        if self.alive:
            try:
                self._send(encode("shutdown"))
                self._proc.wait(timeout=timeout)
            except (FaceKeyError, subprocess.TimeoutExpired):
                self._kill()
                self._proc.wait()
        self._exited.wait(timeout=2.0)  # the reader thread queues the last messages
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._proc.stdin.close()
        with self._lock:
            if self._log_file is not None and not self._log_file.closed:
                self._log_file.close()

    def __enter__(self) -> "BackendClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- requests -------------------------------------------------------------------------
    def submit(self, op: str, args: dict) -> str:
        """Send a request; return its id.  Raises ``backend_died`` if the worker is not running."""
        if self._proc is None:
            raise FaceKeyError("bad_argument", "The backend client was not started.", "Call start() first.")
        rid = f"r{next(self._ids)}"
        with self._lock:
            if not self.alive or self._exited.is_set():
                raise self._died_error(None)
            self._outstanding[rid] = op
        try:
            self._send(encode("request", id=rid, op=op, args=args))
        except FaceKeyError:
            with self._lock:
                self._outstanding.pop(rid, None)
            raise
        return rid

    def poll(self) -> list[dict]:
        """All messages received since the last call (never blocks).

        ``progress`` / ``result`` / ``error`` / ``log`` dicts as in
        :mod:`.messages`; a dead worker yields ``error`` messages with code
        ``backend_died`` (or ``cancelled`` for cancelled requests).
        """
        with self._lock:
            out, self._deferred = self._deferred, []
            out += self._drain_inbox()
        return self._hello_in(out)

    def _drain_inbox(self) -> list[dict]:
        """Messages waiting in the reader thread's queue (never blocks)."""
        out = []
        while True:
            try:
                out.append(self._inbox.get_nowait())
            except queue.Empty:
                return out

    def wait(self, request_id: str, *, on_progress: Optional[Callable[[Progress], None]] = None,
             timeout: Optional[float] = None) -> dict:
        """Block until ``request_id`` ends; return its result payload.

        Progress messages go to ``on_progress``.  Raises the request's
        FaceKeyError, ``backend_died`` if the worker dies, ``backend_timeout``
        after ``timeout`` s (the request keeps running: cancel or close it).
        Messages of other requests are kept for :meth:`poll`.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._deferred.extend(self._drain_inbox())
            mine = [m for m in self._deferred if m.get("id") == request_id]
            self._deferred = [m for m in self._deferred if m.get("id") != request_id]
            if not mine and request_id not in self._outstanding:
                raise FaceKeyError("bad_argument", f"No open request {request_id!r} (unknown, or its result was "
                                   "already taken by poll()).", "Use either poll() or wait() for one request.")
        pending = collections.deque(mine)        # messages that arrived before wait() was called, in order
        while True:
            if pending:
                msg = pending.popleft()
            else:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise FaceKeyError("backend_timeout", f"The backend did not finish request {request_id} "
                                       f"within {timeout:g} s.", f"Cancel the job or give it more time; the log is {self.log_path}.")
                try:
                    msg = self._inbox.get(timeout=remaining)
                except queue.Empty:
                    continue
            if msg.get("type") == "hello":       # a launched worker's: its protocol checked, what waited sent
                taken = self._hello_in([msg])
                if taken[0]["type"] == "error":
                    raise FaceKeyError.from_dict(taken[0])
                continue
            if msg.get("id") != request_id:
                with self._lock:
                    self._deferred.append(msg)
                continue
            if msg["type"] == "progress":
                if on_progress is not None:
                    on_progress(Progress(int(msg["done"]), int(msg["total"]), str(msg["message"])))
                continue
            if msg["type"] in ("result", "error"):
                return self._finish(msg)

    def request(self, op: str, args: dict, *, on_progress=None, timeout: Optional[float] = None) -> dict:
        """``submit`` + ``wait``."""
        return self.wait(self.submit(op, args), on_progress=on_progress, timeout=timeout)

    def cancel(self, request_id: str, *, kill_after: float = 1.0) -> None:
        """Ask the worker to stop ``request_id``; kill the worker if it is still on it after ``kill_after`` s.

        Never blocks; the request then ends with a ``cancelled`` error.
        """
        with self._lock:
            if request_id not in self._outstanding:
                return
            self._cancelled.add(request_id)
        try:
            self._send(encode("cancel", id=request_id))
        except FaceKeyError:
            return  # the worker is gone: the reader thread reports the request as cancelled
        timer = threading.Timer(kill_after, self._kill_if_outstanding, args=(request_id,))
        timer.daemon = True
        timer.start()

    def log_tail(self, lines: int = _TAIL_LINES) -> str:
        """The last ``lines`` lines this worker wrote to the log."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                text = f.read().decode("utf-8", errors="replace")
        except OSError as e:
            return f"(log {self.log_path} unreadable: {e})"
        return "\n".join(text.rstrip().splitlines()[-lines:])

    # -- internals -------------------------------------------------------------------------
    def _finish(self, msg: dict) -> dict:
        if msg["type"] == "result":
            return msg["payload"]
        raise FaceKeyError.from_dict(msg)

    def _send(self, line: str) -> None:
        if self.hello is None and self._hello_deadline != float("inf") and self.alive:
            self._unsent.append(line)      # a launched worker reads its input only once it has said hello
            return
        with self._send_lock:
            try:
                self._proc.stdin.write(line.encode("utf-8"))
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError) as e:
                raise self._died_error(None) from e

    def _kill(self) -> None:
        if self.alive:
            self._proc.kill()

    def _kill_if_outstanding(self, request_id: str) -> None:
        with self._lock:
            still = request_id in self._outstanding
        if still and self.alive:
            self._proc.kill()

    def _died_error(self, op: Optional[str]) -> FaceKeyError:
        if self._proc is not None and not self._hello_seen and self.hello is None:
            return FaceKeyError("backend_missing", "The backend exited before it started:\n" + self.log_tail(),
                                SETUP_HINT)
        rc = self._proc.poll() if self._proc is not None else None
        what = f" while running {op}" if op else ""
        return FaceKeyError("backend_died", f"The FaceKey backend exited unexpectedly (exit code {rc}){what}.\n"
                            + self.log_tail(),
                            f"See the log {self.log_path}; start the job again (the backend restarts). " + SETUP_HINT)

    def _read_stdout(self) -> None:
        """Reader thread: protocol lines -> inbox; at EOF, an error for every open request (whatever
        happened in between: the backend's end is always reported, or a wait would never end)."""
        def note(e: FaceKeyError) -> None:
            with self._lock, contextlib.suppress(OSError):     # a full disk must not stop the reader
                if not self._log_file.closed:
                    self._log_file.write(f"[client] {e.message}\n".encode())
                    self._log_file.flush()

        try:
            for msg in read_messages(self._proc.stdout, note):
                self._hello_seen = self._hello_seen or msg["type"] == "hello"
                with self._lock:  # same lock as wait()'s check: a request is open or its end is queued
                    if msg["type"] in ("result", "error") and msg.get("id") is not None:
                        self._outstanding.pop(str(msg["id"]), None)
                        self._cancelled.discard(str(msg["id"]))
                    self._inbox.put(msg)
        finally:
            self._proc.wait()
            with self._lock:
                self._report_exit()
            self._exited.set()

    def _report_exit(self) -> None:
        """Queue an error for every open request (or one ``backend_died`` if none and not closing)."""
        ended = dict(self._outstanding)
        self._outstanding.clear()
        cancelled, self._cancelled = self._cancelled, set()
        closing = self._closing
        for rid, op in ended.items():
            if rid in cancelled or closing:
                self._inbox.put({"type": "error", "id": rid, "code": "cancelled",
                                 "message": f"{op} was cancelled (the backend was stopped).",
                                 "hint": "Start the job again when you are ready."})
            else:
                self._inbox.put({"type": "error", "id": rid, **self._died_error(op).to_dict()})
        if not ended and not closing:
            self._inbox.put({"type": "error", "id": None, **self._died_error(None).to_dict()})
