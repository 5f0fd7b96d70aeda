"""Job state shown by the panel: progress, last error + hint, log path, last bake report.

Plain Python (no bpy): operators write it, the panel reads it, tests check it.
"""
from __future__ import annotations

import dataclasses

from .protocol.errors import FaceKeyError

__all__ = ["JobState", "STATE"]


@dataclasses.dataclass
class JobState:
    """What the UI shows about the current/last job.

    ``status``: "idle" | "running" | "done" | "error" | "cancelled".
    ``done``/``total``: progress units (frames); ``message``: status text.
    """

    status: str = "idle"
    job: str = ""
    done: int = 0
    total: int = 0
    message: str = ""
    error_code: str = ""
    error_message: str = ""
    error_hint: str = ""
    log_path: str = ""
    report: dict = dataclasses.field(default_factory=dict)
    last_take: str = ""

    @property
    def fraction(self) -> float:
        """Progress in [0, 1]."""
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0

    def begin(self, job: str, message: str = "") -> None:
        """A new job: progress, error and the last job's report are cleared (the panel showed that report
        under the next job's "backend ready")."""
        self.status, self.job, self.done, self.total, self.message = "running", job, 0, 0, message
        self.error_code = self.error_message = self.error_hint = ""
        self.report = {}

    def progress(self, done: int, total: int, message: str = "") -> None:
        self.done, self.total = int(done), int(total)
        if message:
            self.message = message

    def fail(self, err: FaceKeyError) -> None:
        self.status = "cancelled" if err.code == "cancelled" else "error"
        self.error_code, self.error_message, self.error_hint = err.code, err.message, err.hint
        self.message = err.message

    def finish(self, message: str, report: dict | None = None) -> None:
        self.status, self.message = "done", message
        if report is not None:
            self.report = report


#: The one state the UI shows (one job at a time).
STATE = JobState()
