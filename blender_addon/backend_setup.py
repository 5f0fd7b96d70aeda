"""Where the backend lives, and the job that creates it (venv + pip install of the bundled wheel).

The add-on zip carries ``wheels/facekey-<version>-py3-none-any.whl``
(``build_addon.py``); **Set up backend** checks that Blender's own Python is
one the wheel supports, creates a virtual environment with it and
pip-installs ``facekey[backend]`` from that wheel (its dependencies come from
the package index), then reinstalls facekey itself from the wheel (an add-on
update keeps its version number) and imports the whole backend.  Only then is
the environment marked ready (:data:`READY_MARKER`); a set-up that failed or
was cancelled is never taken for one.  The commands run without the
``PYTHON*`` variables Blender's Python ignores (a ``PYTHONPATH`` would make pip
skip packages the backend then lacks) and in their own process group, so
Cancel stops pip's children too.  A Python given in the preferences is used as
is instead.
"""
from __future__ import annotations

import collections
import contextlib
import glob
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import zipfile

from .protocol.client import DROPPED_ENV
from .protocol.errors import FaceKeyError
from .state import STATE, JobState

__all__ = ["user_data_dir", "default_env_dir", "default_log_path", "env_python", "backend_python",
           "bundled_wheel", "SetupJob", "parse_pip_line", "wheel_requires_python", "python_fits", "READY_MARKER"]

ADDON_DIR = os.path.dirname(os.path.abspath(__file__))
_HINT_SETUP = "Open Preferences > Add-ons > FaceKey and click 'Set up backend', or set 'Backend Python' to an existing environment."
#: File written into the environment once a set-up has finished and its check passed.
READY_MARKER = "facekey_ready"


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
    env_dir = env_dir or default_env_dir()
    py = env_python(env_dir)
    if not os.path.isfile(py):
        raise FaceKeyError("backend_missing", f"The FaceKey backend is not set up (no {py}).", _HINT_SETUP)
    if not os.path.isfile(os.path.join(env_dir, READY_MARKER)):
        raise FaceKeyError("backend_missing", f"The FaceKey backend set-up in {env_dir} did not finish (it failed, "
                           "was cancelled, or was made by an older FaceKey).", _HINT_SETUP)
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


def wheel_requires_python(wheel: str) -> str:
    """The wheel's ``Requires-Python`` (e.g. ``">=3.11,<3.12"``; "" when it states none).

    Raises:
        FaceKeyError: ``file_missing`` when the wheel cannot be read (damaged, or not a wheel).
    """
    try:
        with zipfile.ZipFile(wheel) as z:
            meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
            text = z.read(meta).decode("utf-8", "replace")
    except (OSError, zipfile.BadZipFile, StopIteration) as e:
        raise FaceKeyError("file_missing", f"The bundled wheel {wheel} cannot be read ({e!r}).",
                           "Reinstall the add-on from its release zip.") from e
    for line in text.splitlines():
        if line.lower().startswith("requires-python:"):
            return line.split(":", 1)[1].strip()
    return ""


def python_fits(version: tuple[int, ...], spec: str) -> bool:
    """Whether a Python ``version`` (major, minor, micro) meets ``spec``: clauses such as ``>=3.11``,
    ``<3.12``, ``==3.11.*`` or ``!=3.11.2`` joined by commas (a clause of another form is left to pip)."""
    ops = {">=": tuple.__ge__, "<=": tuple.__le__, ">": tuple.__gt__, "<": tuple.__lt__, "==": tuple.__eq__,
           "!=": tuple.__ne__}
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        m = re.fullmatch(r"(>=|<=|==|!=|>|<)\s*(\d+(?:\.\d+)*)(\.\*)?", clause)
        if not m:
            continue
        want = tuple(int(x) for x in m.group(2).split("."))
        if m.group(3):                                 # a prefix: ==3.11.* / !=3.11.*
            have = tuple(version[:len(want)])
        else:
            n = max(len(version), len(want))
            have, want = tuple(version) + (0,) * (n - len(version)), want + (0,) * (n - len(want))
        if not ops[m.group(1)](have, want):
            return False
    return True


def _failure_hint(output: str, log_path: str) -> str:
    """The likely cause of a failed set-up command, from the end of its output."""
    known = (("requires a different Python", "This FaceKey needs another Python version than Blender's; set "
              "'Backend Python' to a Python 3.11 environment with facekey[backend] installed."),
             ("No space left", "The disk is full: free some space and set up again."),
             ("Permission denied", "The environment folder is not writable: pick another in the preferences."),
             ("No matching distribution", "pip could not get a package: check network access to the package "
              "index (or a proxy / PIP_INDEX_URL), then set up again."),
             ("Could not fetch URL", "pip could not reach the package index: check network access, then set up "
              "again."))
    for needle, hint in known:
        if needle in output:
            return f"{hint} Details: {log_path}"
    return f"See the log {log_path} (network access to the package index is needed for the backend's dependencies)."


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

    STEPS = 5  # Python version, create the venv, install the wheel, reinstall facekey, import check
    touches_scene = False        # goes on when another file is opened

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
        pip = [py, "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off", *self.pip_args]
        # with the backend extra the whole stack must import; a bare wheel (tests) has only its own code
        check = "import numpy, torch, cv2, mediapipe, backend.worker" if self.extras == "backend" else "import backend"
        return [
            ("creating the virtual environment", [self.python, "-m", "venv", self.env_dir]),
            ("installing the backend", [*pip, target]),
            ("installing this FaceKey's backend", [*pip, "--force-reinstall", "--no-deps", self.wheel]),
            ("checking the backend", [py, "-c", f"{check}, sys; print('backend ok', sys.version)"]),
        ]

    def _check_python(self, log) -> None:
        """Refuse a creating Python the wheel does not support before anything is made (Blender 3.4-4.0 ship
        Python 3.10; pip's refusal came only after the venv, blaming the network)."""
        spec = wheel_requires_python(self.wheel)
        out = subprocess.run([self.python, "-c", "import sys; print(*sys.version_info[:3])"], capture_output=True,
                             text=True, env=self._env()).stdout.split()
        version = tuple(int(x) for x in out) if len(out) == 3 else ()
        log.write(f"$ Python {'.'.join(map(str, version)) or '?'} for {os.path.basename(self.wheel)} "
                  f"(Requires-Python {spec or 'any'})\n")
        if version and spec and not python_fits(version, spec):
            raise FaceKeyError("backend_missing", f"FaceKey's backend needs Python {spec}; this Blender's Python is "
                               f"{'.'.join(map(str, version))}.",
                               "Install Python 3.11, create an environment with it and pip install the wheel "
                               f"{self.wheel}[backend] there, then set 'Backend Python' to its python in the "
                               "FaceKey preferences.")

    def _env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
        env["PYTHONNOUSERSITE"] = "1"         # packages in ~/.local would count as installed, then be missing
        return env

    def _run(self) -> None:
        try:
            with open(self.log_path, "a", encoding="utf-8") as log:
                self._queue.put(("progress", 0, "checking Blender's Python"))
                self._check_python(log)
                marker = os.path.join(self.env_dir, READY_MARKER)
                with contextlib.suppress(FileNotFoundError):
                    os.remove(marker)             # not ready again until this set-up has passed its check
                for i, (what, cmd) in enumerate(self._commands(), start=1):
                    self._queue.put(("progress", i, what))
                    log.write(f"$ {' '.join(cmd)}\n")
                    log.flush()
                    self._run_one(cmd, log, i)
                with open(marker, "w", encoding="utf-8") as f:
                    f.write(os.path.basename(self.wheel) + "\n")
            self._queue.put(("done", self.STEPS, env_python(self.env_dir)))
        except FaceKeyError as e:
            self._queue.put(("error", e, None))
        except OSError as e:
            self._queue.put(("error", FaceKeyError("backend_missing", f"Backend set-up failed: {e}",
                                                   f"See the log {self.log_path}."), None))
        except Exception as e:  # noqa: BLE001 - a bug: the job still ends, reported as internal
            from .jobs import internal_error
            self._queue.put(("error", internal_error(e, self.log_path), None))

    def _run_one(self, cmd: list[str], log, step: int) -> None:
        with self._lock:
            if self._cancel.is_set():
                raise FaceKeyError("cancelled", "Backend set-up cancelled.", "Click 'Set up backend' to start again.")
            self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                          encoding="utf-8", errors="replace", env=self._env(),
                                          start_new_session=os.name == "posix",
                                          creationflags=getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0))
        tail: collections.deque = collections.deque(maxlen=40)
        for line in self._proc.stdout:
            log.write(line)
            tail.append(line)
            msg = parse_pip_line(line)
            if msg:
                self._queue.put(("progress", step, msg))
        rc = self._proc.wait()
        if self._cancel.is_set():
            raise FaceKeyError("cancelled", "Backend set-up cancelled.", "Click 'Set up backend' to start again.")
        if rc != 0:
            raise FaceKeyError("backend_missing", f"'{' '.join(cmd[:4])} ...' failed with exit code {rc}.",
                               _failure_hint("".join(tail), self.log_path))

    def step(self) -> bool:
        """Apply queued progress to the state; True once the job has ended (also when its thread died
        without a word, which would otherwise leave FaceKey busy)."""
        while True:
            try:
                kind, a, b = self._queue.get_nowait()
            except queue.Empty:
                if not self.finished and self._thread is not None and not self._thread.is_alive() \
                        and self._queue.empty():
                    self.finished = True
                    self.state.fail(FaceKeyError("internal", "The set-up stopped without a result.",
                                                 f"See the log {self.log_path}."))
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
                if os.name == "posix":           # its own session: pip's and ensurepip's children go too
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self._proc.pid, signal.SIGKILL)
                else:                            # Windows: the whole tree
                    subprocess.run(["taskkill", "/F", "/T", "/PID", str(self._proc.pid)], capture_output=True)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the worker thread (tests, blocking runs), then drain the queue."""
        if self._thread is not None:
            self._thread.join(timeout)
        self.step()
