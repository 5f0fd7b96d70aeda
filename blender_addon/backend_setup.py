"""Where the backend lives, and the job that creates it (venv + pip install of the bundled wheel).

The add-on zip carries ``wheels/facekey-<version>-py3-none-any.whl``
(``build_addon.py``); **Set up backend** creates a virtual environment with
Blender's own Python and pip-installs ``facekey[backend]`` from that wheel
(its dependencies come from the package index).  A Python given in the
preferences is used as is instead.
"""
from __future__ import annotations

import glob
import os
import queue
import re
import subprocess
import sys
import threading

from .protocol.errors import FaceKeyError
from .state import STATE, JobState

__all__ = ["user_data_dir", "default_env_dir", "default_log_path", "env_python", "backend_python",
           "bundled_wheel", "SetupJob", "parse_pip_line"]

ADDON_DIR = os.path.dirname(os.path.abspath(__file__))
_HINT_SETUP = "Open Preferences > Add-ons > FaceKey and click 'Set up backend', or set 'Backend Python' to an existing environment."


def user_data_dir() -> str:
    """A writable per-user folder for FaceKey (the extension's user dir on 4.2+; Blender's datafiles dir on 3.x)."""
    import bpy
    package = __package__ or "facekey"
    if package.startswith("bl_ext.") and hasattr(bpy.utils, "extension_path_user"):
        return bpy.utils.extension_path_user(package, create=True)
    return bpy.utils.user_resource("DATAFILES", path="facekey", create=True)


def default_env_dir() -> str:
    """Default backend virtual environment folder: ``<user data dir>/facekey_backend``."""
    return os.path.join(user_data_dir(), "facekey_backend")


def default_log_path() -> str:
    """The backend log file the panel's **Open log** button opens."""
    return os.path.join(user_data_dir(), "logs", "facekey_backend.log")


def env_python(env_dir: str) -> str:
    """The Python executable inside the virtual environment ``env_dir``."""
    if os.name == "nt":
        return os.path.join(env_dir, "Scripts", "python.exe")
    return os.path.join(env_dir, "bin", "python")


def backend_python(python_path: str, env_dir: str) -> str:
    """The backend Python to start: ``python_path`` if given, else the set-up environment's.

    Raises ``backend_missing`` (with the fix as hint) when it does not exist.
    """
    if python_path:
        if not os.path.isfile(python_path):
            raise FaceKeyError("backend_missing", f"Backend Python not found: {python_path}", _HINT_SETUP)
        return python_path
    py = env_python(env_dir or default_env_dir())
    if not os.path.isfile(py):
        raise FaceKeyError("backend_missing", f"The FaceKey backend is not set up (no {py}).", _HINT_SETUP)
    return py


def bundled_wheel(addon_dir: str = ADDON_DIR) -> str:
    """Path of the facekey wheel shipped in the add-on's ``wheels/`` folder."""
    found = sorted(glob.glob(os.path.join(addon_dir, "wheels", "facekey-*.whl")))
    if not found:
        raise FaceKeyError("file_missing", f"No facekey wheel in {os.path.join(addon_dir, 'wheels')}.",
                           "Install the add-on from the release zip built by build_addon.py (it bundles the wheel).")
    return found[-1]


_PIP_PATTERNS = (
    (re.compile(r"^\s*Collecting (\S+)"), "collecting {0}"),
    (re.compile(r"^\s*Downloading (\S+)"), "downloading {0}"),
    (re.compile(r"^\s*Processing (\S+)"), "processing {0}"),
    (re.compile(r"^\s*Installing collected packages: (.+)"), "installing {0}"),
    (re.compile(r"^\s*Successfully installed (.+)"), "installed {0}"),
)


def parse_pip_line(line: str) -> str | None:
    """A short progress message for one line of pip output, or None for noise."""
    for pattern, fmt in _PIP_PATTERNS:
        m = pattern.match(line)
        if m:
            text = fmt.format(m.group(1).strip())
            return text if len(text) <= 90 else text[:87] + "..."
    return None


class SetupJob:
    """Create the backend venv and pip-install the wheel, in a worker thread.

    ``step()`` (main thread) moves queued progress into the :class:`JobState`
    and returns True once the job ended; ``cancel()`` kills the running
    command.  Everything the commands print goes to ``log_path``.

    Args:
        env_dir: venv folder to create (reused if it exists).
        wheel: the facekey wheel; installed as ``<wheel>[backend]`` unless ``extras`` is "".
        log_path: log file (appended).
        python: interpreter creating the venv (default: Blender's ``sys.executable``).
        pip_args: extra ``pip install`` arguments (e.g. ``["--no-deps"]``).
    """

    STEPS = 3  # create the venv, install the wheel, import check

    def __init__(self, env_dir: str, wheel: str, log_path: str, *, python: str = sys.executable,
                 extras: str = "backend", pip_args: list[str] | None = None, state: JobState = STATE):
        self.env_dir, self.wheel, self.log_path, self.python = env_dir, wheel, log_path, python
        self.extras, self.pip_args, self.state = extras, list(pip_args or []), state
        self._queue: queue.Queue = queue.Queue()
        self._cancel = threading.Event()
        self._proc = None
        self._lock = threading.Lock()
        self._thread = None
        self.finished = False

    def start(self) -> None:
        self.state.begin("setup", "creating the backend environment")
        self.state.log_path = self.log_path
        os.makedirs(os.path.dirname(os.path.abspath(self.log_path)), exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="facekey-setup", daemon=True)
        self._thread.start()

    def _commands(self) -> list[tuple[str, list[str]]]:
        py = env_python(self.env_dir)
        target = f"{self.wheel}[{self.extras}]" if self.extras else self.wheel
        return [
            ("creating the virtual environment", [self.python, "-m", "venv", self.env_dir]),
            ("installing the backend", [py, "-m", "pip", "install", "--disable-pip-version-check",
                                        "--progress-bar", "off", *self.pip_args, target]),
            ("checking the backend", [py, "-c", "import backend.protocol, sys; print('backend ok', sys.version)"]),
        ]

    def _run(self) -> None:
        try:
            with open(self.log_path, "a", encoding="utf-8") as log:
                for i, (what, cmd) in enumerate(self._commands()):
                    self._queue.put(("progress", i, what))
                    log.write(f"$ {' '.join(cmd)}\n")
                    log.flush()
                    self._run_one(cmd, log, i)
            self._queue.put(("done", self.STEPS, env_python(self.env_dir)))
        except FaceKeyError as e:
            self._queue.put(("error", e, None))
        except OSError as e:
            self._queue.put(("error", FaceKeyError("backend_missing", f"Backend set-up failed: {e}",
                                                   f"See the log {self.log_path}."), None))

    def _run_one(self, cmd: list[str], log, step: int) -> None:
        with self._lock:
            if self._cancel.is_set():
                raise FaceKeyError("cancelled", "Backend set-up cancelled.", "Click 'Set up backend' to start again.")
            self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                          encoding="utf-8", errors="replace")
        for line in self._proc.stdout:
            log.write(line)
            msg = parse_pip_line(line)
            if msg:
                self._queue.put(("progress", step, msg))
        rc = self._proc.wait()
        if self._cancel.is_set():
            raise FaceKeyError("cancelled", "Backend set-up cancelled.", "Click 'Set up backend' to start again.")
        if rc != 0:
            raise FaceKeyError("backend_missing", f"'{' '.join(cmd[:4])} ...' failed with exit code {rc}.",
                               f"See the log {self.log_path} (network access to the package index is needed "
                               "for the backend's dependencies).")

    def step(self) -> bool:
        """Apply queued progress to the state; True once the job has ended."""
        while True:
            try:
                kind, a, b = self._queue.get_nowait()
            except queue.Empty:
                return self.finished
            if kind == "progress":
                self.state.progress(a, self.STEPS, b)
            elif kind == "done":
                self.finished = True
                self.state.progress(a, self.STEPS)
                self.state.finish(f"backend ready: {b}")
            else:
                self.finished = True
                self.state.fail(a)

    def cancel(self) -> None:
        """Stop the running command; the job ends with ``cancelled``."""
        with self._lock:
            self._cancel.set()
            if self._proc is not None and self._proc.poll() is None:
                self._proc.kill()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the worker thread (tests, blocking runs), then drain the queue."""
        if self._thread is not None:
            self._thread.join(timeout)
        self.step()
