"""Jobs the operators run, as plain objects tests can drive step by step.

Modal operators and timers are thin shells over these: ``step()`` drains the
backend's messages without blocking, ``cancel()`` stops the job, and
``run_blocking()`` is the same loop for ``blender -b`` (where timers never
fire and modal operators get no events).
"""
from __future__ import annotations

import os
import time

from .protocol.errors import FaceKeyError
from .protocol.take import read_take
from .state import STATE, JobState

__all__ = ["BackendJob", "CaptureJob", "CLOSE_TIMEOUT_S"]

#: Seconds the worker gets to exit after ``shutdown`` before it is killed.
CLOSE_TIMEOUT_S = 0.3


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
        self.request_id = None
        self.finished = False

    def start(self) -> None:
        """Start the backend (waits for its hello) and submit the request; errors go to the state."""
        from .protocol.client import BackendClient
        self.state.begin(self.label, "starting the backend")
        self.state.log_path = self.log_path
        try:
            if self.check is not None:
                self.check()
            self.client = BackendClient(self.python, self.log_path, **self.client_kwargs)
            hello = self.client.start()
            self.state.message = f"backend {hello.get('version', '?')} on {hello.get('device', '?')}: {self.label}"
            self.request_id = self.client.submit(self.op, self.args)
        except FaceKeyError as e:
            self._end(e)

    def step(self) -> bool:
        """Handle every message queued so far; return True once the job has ended."""
        if self.finished:
            return True
        for msg in self.client.poll():
            kind = msg.get("type")
            if kind == "progress" and msg.get("id") == self.request_id:
                self.state.progress(msg["done"], msg["total"], msg.get("message", ""))
            elif kind == "result" and msg.get("id") == self.request_id:
                self._on_result(msg["payload"])
                return True
            elif kind == "error":
                self._end(FaceKeyError.from_dict(msg))
                return True
        return False

    def _on_result(self, payload: dict) -> None:
        self._end(None)  # the backend is no longer needed; a failing bake must not leave it running
        try:
            message, report = self.finish(payload)
        except FaceKeyError as e:
            self.state.fail(e)
            return
        self.state.finish(message, report)

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
        if self.client is not None:
            # Nothing is lost by not waiting for the worker's slow interpreter teardown (~1 s with
            # MediaPipe loaded): Takes are written atomically before the result is sent.
            self.client.close(timeout=CLOSE_TIMEOUT_S)
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
