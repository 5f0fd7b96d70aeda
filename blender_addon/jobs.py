"""Jobs the operators run, as plain objects tests can drive step by step.

Modal operators and timers are thin shells over these: ``step()`` drains the
backend's messages without blocking, ``cancel()`` stops the job, and
``run_blocking()`` is the same loop for ``blender -b`` (where timers never
fire and modal operators get no events).  ``LocalJob`` is the same interface
for work done in this process; ``JobSequence`` runs several jobs (one per
target) as one job the UI shows, its backend parts on one shared worker
(:class:`SharedWorker`).  In an interactive session the operators run every
job on :data:`WARM` (:func:`keep_warm`), a worker left running between jobs
until it has rested for the preference's idle time, so the next click skips
the worker start.
"""
from __future__ import annotations

import collections
import os
import time
import traceback

from .protocol.errors import FaceKeyError
from .protocol.take import read_take
from .state import STATE, JobState

__all__ = ["BackendJob", "CaptureJob", "LocalJob", "JobSequence", "SharedWorker", "WARM", "keep_warm",
           "CLOSE_TIMEOUT_S"]

#: Seconds the worker gets to exit after ``shutdown`` before it is killed.
CLOSE_TIMEOUT_S = 0.3


def internal_error(err: Exception, log_path: str) -> FaceKeyError:
    """A bug met while running (not a FaceKeyError) as the ``internal`` error the panel shows; its traceback
    (of the exception being handled) is appended to the log at ``log_path``."""
    try:
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(traceback.format_exc())
        where = f"the traceback is in {log_path}"
    except OSError as e:
        where = f"the log {log_path} could not be written ({e.strerror or e})"
    return FaceKeyError("internal", f"{type(err).__name__}: {err}", f"This is a bug; {where}.")


def _fail_internal(state: JobState, err: Exception) -> FaceKeyError:
    """``state`` fails with :func:`internal_error` of ``err``; returns that error."""
    from .backend_setup import default_log_path
    e = internal_error(err, state.log_path or default_log_path())
    state.fail(e)
    return e


def _settle(state: JobState, produce) -> None:
    """``state.finish(*produce())``; an error ``produce`` raises becomes the state's error instead (a bug,
    not a FaceKeyError, as ``internal`` with its traceback in the log)."""
    try:
        message, report = produce()
    except FaceKeyError as e:
        state.fail(e)
        return
    except Exception as e:       # noqa: BLE001 - the job's one boundary for bugs: reported, never stuck
        _fail_internal(state, e)
        return
    state.finish(message, report)


class SharedWorker:
    """The backend worker that the backend parts of one :class:`JobSequence` take turns on.

    Started by the first part that needs it; started again for a part when it
    is not running (it died, or a cancel killed it) or that part names another
    Python, log or client arguments; closed when the sequence ends, or, kept
    between jobs (:func:`keep_warm`), left to rest (:meth:`rest`) until
    :meth:`close_if_idle`.  A worker start costs ~2.5 s (Python, torch,
    MediaPipe), paid once per sequence instead of once per target (and per
    clip of a folder capture), and once per session on a kept worker.
    """

    def __init__(self):
        self.client = None
        self._key = None
        self.idle_since = None      # time.monotonic() when the last job on it ended; None while in use

    def client_for(self, python: str, log_path: str, client_kwargs: dict):
        """A started :class:`~.protocol.client.BackendClient` for these arguments (its start errors propagate)."""
        from .protocol.client import BackendClient
        key = (python, log_path, repr(sorted(client_kwargs.items())))
        if self.client is not None and (key != self._key or not self.client.alive):
            self.close()
        if self.client is None:
            client = BackendClient(python, log_path, **client_kwargs)
            client.launch()          # not waiting for its hello: the job's step() sees it (or its timeout)
            self.client, self._key = client, key
        self.idle_since = None
        return self.client

    def rest(self) -> None:
        """The job on the worker has ended and the worker stays up: start its idle clock."""
        self.idle_since = time.monotonic() if self.client is not None else None

    def release(self, cancelled: bool) -> None:
        """A job on this worker, kept between jobs, has ended: rest, or close after a cancel (the worker
        may still be busy, or was killed: the next job starts afresh)."""
        if cancelled:
            self.close()
        else:
            self.rest()

    def close_if_idle(self, idle_s: float) -> bool:
        """Close the worker once it has rested at least ``idle_s`` seconds; True when it was closed."""
        if self.client is None or self.idle_since is None or time.monotonic() - self.idle_since < idle_s:
            return False
        self.close()
        return True

    def close(self) -> None:
        """Shut the worker down (killed if it has not exited within ``CLOSE_TIMEOUT_S``)."""
        if self.client is not None:
            self.client.close(timeout=CLOSE_TIMEOUT_S)
            self.client = None
        self.idle_since = None


#: The worker the operators keep between jobs in an interactive session (:func:`keep_warm`).
WARM = SharedWorker()


class BackendJob:
    """One request to the backend worker; its result is handled on the main thread.

    Args:
        python: the backend environment's Python executable.
        log_path: file receiving the backend's stderr/logging.
        op, args: the worker request.
        finish: ``finish(payload) -> (message, report)``, called on the main
            thread when the result arrives (nothing in the scene changes before);
            a FaceKeyError it raises becomes the job's error.
        label: the job's name in the UI state ("capture", "solve", ...).
        check: optional ``check()`` run first; its FaceKeyError ends the job
            before the backend starts.
        state: the :class:`JobState` to update (default: the UI's).
        client_kwargs: extra ``BackendClient`` arguments (``env``, ``cwd``, ``args``).
    """

    def __init__(self, python: str, log_path: str, op: str, args: dict, finish, *, label: str, check=None,
                 state: JobState = STATE, client_kwargs: dict | None = None):
        self.python, self.log_path, self.op, self.args = python, log_path, op, args
        self.finish, self.label, self.check, self.state = finish, label, check, state
        self.client_kwargs = client_kwargs or {}
        self.client = None
        self.worker: SharedWorker | None = None     # set by a JobSequence: run on its worker, leave it running
        self.rests_worker = False                   # set by keep_warm: the job alone on a kept worker
        self.request_id = None
        self.finished = False

    def start(self) -> None:
        """Start the backend and submit the request, without waiting for the backend's hello (a start
        takes ~5 s: Blender's UI must not freeze, and Esc must work meanwhile); errors go to the state."""
        from .protocol.client import BackendClient
        self.state.begin(self.label, "starting the backend")
        self.state.log_path = self.log_path
        try:
            if self.check is not None:
                self.check()
            if self.worker is not None:
                self.client = self.worker.client_for(self.python, self.log_path, self.client_kwargs)
            else:
                self.client = BackendClient(self.python, self.log_path, **self.client_kwargs)
                self.client.launch()
            if self.client.hello is not None:
                self._say_hello(self.client.hello)
            self.request_id = self.client.submit(self.op, self.args)
        except FaceKeyError as e:
            self._end(e)
        except Exception as e:       # noqa: BLE001 - a bug: the job ends reported, its worker closed
            self._end(internal_error(e, self.log_path))

    def step(self) -> bool:
        """Handle every message queued so far; return True once the job has ended."""
        if self.finished:
            return True
        try:
            return self._handle_messages()
        except Exception as e:       # noqa: BLE001 - a bug: the job ends reported, its worker closed
            self._end(internal_error(e, self.log_path))
            return True

    def _say_hello(self, hello: dict) -> None:
        self.state.message = f"backend {hello.get('version', '?')} on {hello.get('device', '?')}: {self.label}"

    def _handle_messages(self) -> bool:
        for msg in self.client.poll():
            kind = msg.get("type")
            if kind == "hello":
                self._say_hello(msg)
            elif kind == "progress" and msg.get("id") == self.request_id:
                self.state.progress(msg["done"], msg["total"], msg.get("message", ""))
            elif kind == "result" and msg.get("id") == self.request_id:
                self._on_result(msg["payload"])
                return True
            elif kind == "error" and msg.get("id") in (None, self.request_id):
                self._end(FaceKeyError.from_dict(msg))
                return True
        return False

    def _on_result(self, payload: dict) -> None:
        self._end(None)  # the backend is no longer needed; a failing bake must not leave it running
        _settle(self.state, lambda: self.finish(payload))

    def cancel(self) -> None:
        """Ask the backend to stop (it is killed if it has not stopped within 1 s); the scene is untouched."""
        if self.finished:
            return
        if self.client is not None and self.request_id is not None:
            self.client.cancel(self.request_id, kill_after=1.0)
        self._end(FaceKeyError("cancelled", f"{self.label.capitalize()} cancelled; the scene was not changed.", ""))

    def run_blocking(self, poll_interval: float = 0.05, timeout: float | None = None) -> None:
        """``start()`` then ``step()`` until the job ends (headless runs, tests)."""
        self.start()
        t0 = time.monotonic()
        while not self.step():
            if timeout is not None and time.monotonic() - t0 > timeout:
                self._end(FaceKeyError("backend_timeout", f"The {self.label} took more than {timeout:.0f} s.",
                                       "Try a shorter clip, or a smaller 'max side' setting."))
                return
            time.sleep(poll_interval)

    def _end(self, err: FaceKeyError | None) -> None:
        self.finished = True
        if self.client is not None and self.worker is None:
            # Nothing is lost by not waiting for the worker's slow interpreter teardown (~1 s with
            # MediaPipe loaded): Takes are written atomically before the result is sent.
            self.client.close(timeout=CLOSE_TIMEOUT_S)
        elif self.rests_worker:
            self.worker.release(cancelled=err is not None and err.code == "cancelled")
        if err is not None:
            self.state.fail(err)


class CaptureJob(BackendJob):
    """One capture through the backend worker, then a bake of the resulting Take.

    Args:
        python, log_path: as :class:`BackendJob`.
        footage: video file, image folder or photo.
        take_out: where the backend writes the Take (.npz).
        settings: capture settings dict (``smoothing``, ``max_side``, ...).
        face_index: which face (None = largest).
        bake: ``bake(take, take_path) -> report dict``, called on the main
            thread when the result arrives (nothing in the scene changes before).
    """

    def __init__(self, python: str, log_path: str, footage: str, take_out: str, settings: dict,
                 face_index: int | None, bake, *, state: JobState = STATE, client_kwargs: dict | None = None):
        self.footage, self.take_out, self.bake = footage, take_out, bake
        super().__init__(python, log_path, "capture",
                         {"footage": footage, "output": take_out, "settings": settings, "face_index": face_index},
                         self._bake_result, label="capture", check=self._check_footage, state=state,
                         client_kwargs=client_kwargs)

    def _check_footage(self) -> None:
        if not os.path.exists(self.footage):
            raise FaceKeyError("file_missing", f"Footage not found: {self.footage}",
                               "Pick a video file, an image folder or a photo in the FaceKey panel.")

    def _bake_result(self, payload: dict) -> tuple[str, dict]:
        take = read_take(payload["take"])
        self.state.last_take = payload["take"]
        report = self.bake(take, payload["take"])
        report["unmapped_from_backend"] = list(payload.get("unmapped", []))
        return f"baked {report['frames']} frames onto {len(report['objects'])} object(s)", report


class LocalJob:
    """Work done in this process on the main thread, with the interface of :class:`BackendJob`.

    Args:
        run: ``run() -> (message, report)``; a FaceKeyError it raises becomes the job's error.
        label: the job's name in the UI state.
        state: the :class:`JobState` to update (default: the UI's).
    """

    client = None

    def __init__(self, run, *, label: str, state: JobState = STATE):
        self.run, self.label, self.state = run, label, state
        self.finished = False

    def start(self) -> None:
        self.state.begin(self.label, self.label)
        self.finished = True
        _settle(self.state, self.run)

    def step(self) -> bool:
        return self.finished

    def cancel(self) -> None:
        """Nothing to stop: the work runs inside ``start``."""

    def run_blocking(self, poll_interval: float = 0.0, timeout: float | None = None) -> None:
        self.start()


class CheckJob:
    """Start a backend, show its ``hello`` (version, device, protocol), shut it down: with the interface of
    :class:`BackendJob`, so the UI never waits on the start (it blocked Blender for the ~3 s start, up to
    the 60 s timeout on a hung backend).

    Args:
        python: the backend's Python.  log_path: its log.  timeout: seconds allowed for the hello.
    """

    touches_scene = False        # goes on when another file is opened

    def __init__(self, python: str, log_path: str, *, timeout: float = 60.0, state: JobState = STATE,
                 client_kwargs: dict | None = None):
        self.python, self.log_path, self.timeout, self.state = python, log_path, timeout, state
        self.client_kwargs = client_kwargs or {}
        self.client = None
        self.finished = False

    def start(self) -> None:
        from .protocol.client import BackendClient
        self.state.begin("check", "starting the backend")
        self.state.log_path = self.log_path
        self.client = BackendClient(self.python, self.log_path, **self.client_kwargs)
        try:
            self.client.launch(timeout=self.timeout)
        except FaceKeyError as e:
            self._end(e)

    def step(self) -> bool:
        if self.finished:
            return True
        errors = [m for m in self.client.poll() if m.get("type") == "error"]
        if errors:
            self._end(FaceKeyError.from_dict(errors[0]))
        elif self.client.hello is not None:
            h = self.client.hello
            self._end(None, f"backend {h.get('version', '?')} on {h.get('device', '?')} (protocol {h.get('protocol')})")
        return self.finished

    def _end(self, err: FaceKeyError | None, message: str = "") -> None:
        self.finished = True
        if self.client is not None:
            self.client.close(timeout=0.5)
        if err is None:
            self.state.finish(message, {"hello": dict(self.client.hello)})
        else:
            self.state.fail(err)

    def cancel(self) -> None:
        if not self.finished:
            self._end(FaceKeyError("cancelled", "Backend check cancelled.", ""))

    def run_blocking(self, poll_interval: float = 0.05, timeout: float | None = None) -> None:
        self.start()
        while not self.step():
            time.sleep(poll_interval)


class JobSequence:
    """Parts (one per target, say) run one after another as one job the UI shows.

    Each part is ``make(state) -> job`` (a :class:`BackendJob`, :class:`CaptureJob`
    or :class:`LocalJob`, not started, updating the private ``state`` it is given);
    it is made only when its turn comes, so it sees the scene as the earlier parts
    left it.  A part's error (raised by ``make`` or ended with) is kept under the
    part's name and the next part runs; a ``required`` part's error (a failed
    capture) or a cancel ends the whole sequence.  Parts may add parts while they
    run (e.g. the capture adds the targets once the take exists): those run next,
    before the parts queued earlier (a folder of clips bakes each take before the
    next clip is captured).

    Args:
        label: the job's name in the UI state.
        summarize: ``summarize(results {name: report}, errors {name: FaceKeyError})
            -> (message, report)`` once every part has ended; its FaceKeyError
            (nothing succeeded, say) becomes the job's error.
        state: the :class:`JobState` the UI shows (progress of the running part is mirrored).

    The worker (``worker``, a fresh :class:`SharedWorker` unless :func:`keep_warm` gave
    it a kept one) is closed when the sequence ends, or, kept, left to rest; a cancel
    always closes it.
    """

    def __init__(self, label: str, summarize, *, state: JobState = STATE):
        self.label, self.summarize, self.state = label, summarize, state
        self.parts: collections.deque = collections.deque()
        self.results: dict[str, dict] = {}
        self.errors: dict[str, FaceKeyError] = {}
        self.finished = False
        self._job = self._part = None
        self._added: list = []      # parts added by the running part, queued next when it ends
        self.worker = SharedWorker()
        self.keeps_worker = False   # set by keep_warm: rest the worker at the end instead of closing it

    @property
    def client(self):
        """The backend client of the part that runs (or ran last), if it has one."""
        return getattr(self._job, "client", None)

    def add(self, name: str, make, *, required: bool = False) -> None:
        """Queue a part: ``make(state) -> job``; ``required``: its error ends the sequence.  Called
        while a part runs, the part goes after that one and the parts it added before, ahead of the rest."""
        (self._added if self._part is not None else self.parts).append((name, make, required))

    def start(self) -> None:
        self.state.begin(self.label, f"{self.label}: starting")
        self.step()

    def step(self) -> bool:
        """Advance the running part and start the next ones; return True once everything has ended."""
        while not self.finished:
            if self._part is None:
                self._start_next()
            elif self._job.step():
                self._collect()
            else:
                self._mirror()
                return False
        return True

    def _start_next(self) -> None:
        """Start the next part (its ``make`` error is kept like any part's); finish when none is left."""
        if not self.parts:
            self._finish()
            return
        name, make, required = self.parts.popleft()
        self._part = (name, required, JobState())
        try:
            self._job = make(self._part[2])
            if isinstance(self._job, BackendJob):
                self._job.worker = self.worker
            self._job.start()
        except FaceKeyError as e:
            self._part[2].fail(e)
            self._collect()
        except Exception as e:       # noqa: BLE001 - a bug in making the part: kept like the part's error
            _fail_internal(self._part[2], e)
            self._collect()

    def _mirror(self) -> None:
        name, _, part_state = self._part
        self.state.progress(part_state.done, part_state.total, f"{name}: {part_state.message}")
        self.state.log_path = part_state.log_path or self.state.log_path

    def _collect(self) -> None:
        name, required, part_state = self._part
        self._mirror()
        self._part = None
        self.parts.extendleft(reversed(self._added))
        self._added = []
        self.state.last_take = part_state.last_take or self.state.last_take
        if part_state.status == "done":
            self.results[name] = part_state.report
            return
        err = FaceKeyError(part_state.error_code or "internal", part_state.error_message, part_state.error_hint)
        if required or err.code == "cancelled":
            self.finished = True
            self.parts.clear()
            self._release_worker(cancelled=err.code == "cancelled")
            self.state.fail(err)
            return
        self.errors[name] = err

    def _release_worker(self, cancelled: bool = False) -> None:
        if self.keeps_worker:
            self.worker.release(cancelled)
        else:
            self.worker.close()

    def _finish(self) -> None:
        self.finished = True
        self._release_worker()
        _settle(self.state, lambda: self.summarize(self.results, self.errors))

    def cancel(self) -> None:
        """Cancel the running part and skip the rest; parts already done keep what they added."""
        if self.finished:
            return
        if self._part is not None:
            self._job.cancel()
        self.finished = True
        self.parts.clear()
        self.worker.close()
        self.state.fail(FaceKeyError("cancelled", f"{self.label.capitalize()} cancelled; targets already done "
                                     "keep their new animation, the others were not changed.", ""))

    def run_blocking(self, poll_interval: float = 0.05, timeout: float | None = None) -> None:
        """``start()`` then ``step()`` until everything has ended (headless runs, tests); past ``timeout``
        seconds the sequence is cancelled and fails with ``backend_timeout``."""
        self.start()
        t0 = time.monotonic()
        while not self.step():
            if timeout is not None and time.monotonic() - t0 > timeout:
                self.cancel()
                self.state.fail(FaceKeyError("backend_timeout", f"The {self.label} took more than {timeout:.0f} s.",
                                             "Try a shorter clip, or a smaller 'max side' setting."))
                return
            time.sleep(poll_interval)


def keep_warm(job, worker: SharedWorker = WARM):
    """Run ``job`` (a :class:`BackendJob` or :class:`JobSequence`, not started) on ``worker`` and leave
    the worker running when the job ends (a cancel still closes it); other jobs are returned as they are.

    The operators do this in an interactive session; what closes a kept worker is
    :meth:`SharedWorker.close_if_idle` (the add-on's idle timer), a cancel, or Blender quitting
    (the worker exits when its stdin closes).
    """
    if isinstance(job, JobSequence):
        job.worker, job.keeps_worker = worker, True
    elif isinstance(job, BackendJob):
        job.worker, job.rests_worker = worker, True
    return job
