"""``python -m backend.worker``: the backend process behind the add-on and the client.

Speaks the JSON-lines protocol of :mod:`backend.protocol.messages` on
stdin/stdout.  On start it says ``hello`` {protocol, version, device}, then
serves requests one at a time:

* ``ping`` {} -> {pong: true, pid, version}
* ``capture`` {footage, output, settings: {CaptureSettings fields}, face_index}
  -> {take, frames, valid_frames, fps, duration, source}
* ``import_csv`` {csv, output} -> {take, frames, fps, duration}
* ``export_csv`` {take, csv} -> {csv, frames}
* ``retarget_solve`` {take, character, output, keys, exclude, [frames | frame]} -> {key_take, report, frames}
* ``mesh_retarget`` {take, vertices, output, serep, start_frame, axes, [at_rate | frames | frame]} -> {pc2, samples,
  points, max_displacement_mm, frames}
* ``generate`` {label, gan, s2d, output, seed, fps, mirror} -> {take, frames, fps, label, seed, apex}

``frames`` (a list of take frame indices) or ``frame`` (one index) restricts the
take to those frames before solving / transferring (a one-frame preview);
out of range, not an int or not increasing -> ``bad_argument``.

A stdin reader thread takes ``cancel`` {id} while a job runs (it sets that
job's ``threading.Event``; jobs stop between frames) and ``shutdown`` (or EOF)
ends the process.  stdout carries only protocol lines: the real fd 1 is kept
privately for them and fd 1 / ``sys.stdout`` are pointed at stderr, so prints
from libraries (Python or C) land in the log.  stderr is the log file the
client opened; ``FACEKEY_LOG`` names it for messages.
"""
from __future__ import annotations

import faulthandler
import logging
import os
import queue
import sys
import threading
import time
import traceback
from typing import Callable

from . import __version__
from .protocol.errors import FaceKeyError
from .protocol.messages import PROTOCOL_VERSION, Progress, encode, read_messages

__all__ = ["Worker", "main"]

log = logging.getLogger("facekey.worker")
#: Seconds a worker whose input ended without a shutdown (the add-on is gone) lives on to finish cleanly.
ORPHAN_GRACE_S = 5.0

#: Minimum seconds between two progress messages of one request (final one always sent).
PROGRESS_INTERVAL = 0.05


class Worker:
    """Serves protocol requests read from ``stdin`` and answers on ``out``.

    Args:
        stdin: binary stream of request lines.
        out: text stream for protocol lines (only this object writes to it).
        exit_when_orphaned: the worker process (``main``) ends :data:`ORPHAN_GRACE_S` after its input
            ends without a ``shutdown`` (the add-on or Blender is gone), running op or not.
    """

    def __init__(self, stdin, out, exit_when_orphaned: bool = False):
        self.exit_when_orphaned = exit_when_orphaned     # the process exits ORPHAN_GRACE_S after input ends
        self._stdin = stdin
        self._out = out
        self._write_lock = threading.Lock()
        self._jobs: queue.Queue = queue.Queue()
        self._state_lock = threading.Lock()
        self._running_id: str | None = None
        self._running_cancel: threading.Event | None = None
        self._cancelled_ids: set[str] = set()
        self.ops: dict[str, Callable[[dict, Callable, threading.Event], dict]] = {
            "ping": self._op_ping, "capture": _op_capture, "import_csv": _op_import_csv, "export_csv": _op_export_csv,
            "retarget_solve": _op_retarget_solve, "mesh_retarget": _op_mesh_retarget, "generate": _op_generate,
        }

    def send(self, msg_type: str, **fields) -> None:
        line = encode(msg_type, **fields)
        with self._write_lock:
            self._out.write(line)
            self._out.flush()

    def serve(self, device: str) -> None:
        """Say hello, then run requests until ``shutdown`` or end of input."""
        self.send("hello", protocol=PROTOCOL_VERSION, version=__version__, device=device, pid=os.getpid())
        threading.Thread(target=self._read_stdin, name="facekey-stdin", daemon=True).start()
        while True:
            job = self._jobs.get()
            if job is None:
                log.info("shutdown")
                return
            self._run(job)

    def _read_stdin(self) -> None:
        def malformed(e: FaceKeyError) -> None:
            log.error("ignoring malformed input line: %s", e)
            self.send("error", id=None, code=e.code, message=e.message, hint=e.hint)

        for msg in read_messages(self._stdin, malformed):
            kind = msg["type"]
            if kind == "request":
                self._jobs.put(msg)
            elif kind == "cancel":
                self._cancel(str(msg["id"]))
            elif kind == "shutdown":
                break
            else:
                log.warning("ignoring %s message from the client", kind)
        else:       # input ended without a shutdown: the add-on (or Blender) is gone
            if self.exit_when_orphaned:
                # an op that does not look at its cancel flag would run on, orphaned, for its whole length
                log.warning("input ended without a shutdown (the add-on is gone): exiting in %g s", ORPHAN_GRACE_S)
                orphan = threading.Timer(ORPHAN_GRACE_S, os._exit, args=(1,))
                orphan.daemon = True
                orphan.start()
        self._cancel_running()
        self._jobs.put(None)

    def _cancel(self, request_id: str) -> None:
        with self._state_lock:
            if self._running_id == request_id and self._running_cancel is not None:
                self._running_cancel.set()
            else:
                self._cancelled_ids.add(request_id)
        log.info("cancel requested for %s", request_id)

    def _cancel_running(self) -> None:
        with self._state_lock:
            if self._running_cancel is not None:
                self._running_cancel.set()

    def _run(self, msg: dict) -> None:
        rid, op, args = str(msg["id"]), msg["op"], msg["args"]
        cancel = threading.Event()
        with self._state_lock:
            if rid in self._cancelled_ids:
                self._cancelled_ids.discard(rid)
                cancel.set()
            self._running_id, self._running_cancel = rid, cancel
        log.info("request %s: %s %s", rid, op, args)
        t0 = time.monotonic()
        try:
            if cancel.is_set():
                raise FaceKeyError("cancelled", f"{op} was cancelled before it started.", "Start it again when ready.")
            handler = self.ops.get(op)
            if handler is None:
                raise FaceKeyError("protocol", f"Unknown operation {op!r}.",
                                   "The add-on and the backend may be different versions: run Set up backend again.")
            if not isinstance(args, dict):
                raise FaceKeyError("protocol", f"Arguments of {op} must be an object.",
                                   "The add-on and the backend may be different versions: run Set up backend again.")
            payload = handler(args, self._progress_sender(rid), cancel)
            self.send("result", id=rid, payload=payload)
            log.info("request %s done in %.2f s", rid, time.monotonic() - t0)
        except FaceKeyError as e:
            log.info("request %s failed: [%s] %s", rid, e.code, e.message)
            self.send("error", id=rid, code=e.code, message=e.message, hint=e.hint)
        except Exception as e:  # the error boundary: any bug becomes an 'internal' error + traceback in the log
            log.error("request %s crashed:\n%s", rid, traceback.format_exc())
            self.send("error", id=rid, code="internal", message=f"{op} failed: {type(e).__name__}: {e}",
                      hint=f"This is a bug; the traceback is in the log file {os.environ.get('FACEKEY_LOG', '(stderr)')}.")
        finally:
            with self._state_lock:
                self._running_id, self._running_cancel = None, None

    def _progress_sender(self, rid: str) -> Callable[[Progress], None]:
        last = [0.0]

        def progress(p: Progress) -> None:
            now = time.monotonic()
            final = p.total > 0 and p.done >= p.total
            if final or now - last[0] >= PROGRESS_INTERVAL:
                last[0] = now
                self.send("progress", id=rid, done=int(p.done), total=int(p.total), message=str(p.message))

        return progress

    def _op_ping(self, args: dict, progress, cancel) -> dict:
        return {"pong": True, "pid": os.getpid(), "version": __version__}


def _arg(args: dict, name: str, kind: type = str):
    if name not in args or not isinstance(args[name], kind):
        raise FaceKeyError("bad_argument", f"Request argument {name!r} is missing or not a {kind.__name__}.",
                           "The add-on and the backend may be different versions: run Set up backend again.")
    return args[name]


def _take_arg(args: dict):
    """The request's ``take``, restricted to its optional ``frames`` (list) or ``frame`` (int).

    Returns (Take, the kept take frame indices, or None when the request names no frames).
    """
    from .protocol.take import read_take, select_frames

    take = read_take(_arg(args, "take"))
    if "frames" in args and "frame" in args:
        raise FaceKeyError("bad_argument", "Pass either frames or frame, not both.", "e.g. frames=[12] or frame=12.")
    frames = [args["frame"]] if "frame" in args else args.get("frames")
    if frames is None:
        return take, None
    take = select_frames(take, frames)
    return take, list(take.header["frames"])


def _op_capture(args: dict, progress, cancel) -> dict:
    from .capture import CaptureSettings, capture
    from .protocol.take import write_take

    footage, output = _arg(args, "footage"), _arg(args, "output")
    settings = CaptureSettings.from_dict(dict(args.get("settings") or {}))
    if args.get("face_index") is not None:
        settings.face_index = args["face_index"]
    take = capture(footage, settings.validate(), progress=progress, cancel=cancel)
    write_take(output, take)
    return {"take": os.path.abspath(output), "frames": take.num_frames, "valid_frames": int(take.valid.sum()),
            "fps": take.fps, "duration": _duration(take), "source": os.path.abspath(footage)}


def _op_import_csv(args: dict, progress, cancel) -> dict:
    from .protocol.livelink import read_livelink_csv
    from .protocol.take import write_take

    take = read_livelink_csv(_arg(args, "csv"))
    output = write_take(_arg(args, "output"), take)
    return {"take": os.path.abspath(output), "frames": take.num_frames, "fps": take.fps, "duration": _duration(take)}


def _op_export_csv(args: dict, progress, cancel) -> dict:
    from .protocol.livelink import write_livelink_csv
    from .protocol.take import read_take

    take = read_take(_arg(args, "take"))
    path = write_livelink_csv(_arg(args, "csv"), take)
    return {"csv": os.path.abspath(path), "frames": take.num_frames}


def _op_retarget_solve(args: dict, progress, cancel) -> dict:
    """Character solve: {take, character (CharacterKeys .npz measured in Blender), output,
    keys / exclude (glob lists), optional frames / frame} -> {key_take, report, frames} (the add-on bakes
    the KeyTake; with ``frames`` it holds only those frames, solved without the neighbours' smoothing)."""
    from .facemodel import load_face_model
    from .protocol.keytake import read_character_keys, write_key_take
    from .retarget.character_solve import SolveSettings, retarget_take

    take_path = _arg(args, "take")
    keys, exclude = list(args.get("keys") or []), list(args.get("exclude") or [])
    if not all(isinstance(k, str) for k in keys + exclude):
        raise FaceKeyError("bad_argument", "keys/exclude must be lists of glob patterns.", "e.g. [\"Fcl_*\"].")
    take, frames = _take_arg(args)
    progress(Progress(0, 1, "solving the character's keys"))
    kt, report = retarget_take(take, read_character_keys(_arg(args, "character")), load_face_model(),
                               SolveSettings(keys=keys, exclude=exclude))
    kt.header["source_take"] = take_path
    output = write_key_take(_arg(args, "output"), kt)
    progress(Progress(1, 1, "solved"))
    return {"key_take": os.path.abspath(output), "report": report, "frames": frames}


#: Mesh-level retarget axes: "head" = x subject's left, y up, z out of the face (the backend's frame);
#: "blender" = object local coordinates of a Blender mesh, Z up, face toward -Y (head = (x, z, -y)).
MESH_AXES = ("head", "blender")


def _op_mesh_retarget(args: dict, progress, cancel) -> dict:
    """Mesh-level retarget: {take, vertices (.npz with ``vertices`` (N, 3) metres), output (.pc2),
    serep (weights path or null: blendshape transfer), start_frame, axes ("head" | "blender"),
    optional at_rate (bool) or frames / frame (take frame indices)} -> {pc2, samples, points,
    max_displacement_mm, frames}.

    The cache holds one sample per take frame; with ``at_rate`` one per ``1 / fps`` seconds of the
    take's own clock instead, sample k at k / fps (``mesh_transfer.weights_at_rate``: what a Mesh
    Cache playing at the take's rate needs to keep step with a shape-key bake of a variable-rate
    take).  With ``frames`` only those take frames are transferred: one sample each, the first at
    ``start_frame`` + its time x fps (where a cache on the take's clock shows it).

    With ``axes="blender"`` the vertices are read as Blender object-local coordinates and the
    cache is written in them too (head = (x, z, -y) in, local = (x_h, -z_h, y_h) out), so a Mesh
    Cache modifier plays it on that object directly.
    """
    import numpy as np

    from .protocol.axes import points_from_blender, points_to_blender
    from .protocol.pc2 import write_pc2
    from .retarget.mesh_transfer import blendshape_displacements, take_to_mesh, weights_at_rate

    axes = args.get("axes", "head")
    if axes not in MESH_AXES:
        raise FaceKeyError("bad_argument", f"axes {axes!r} is not one of {MESH_AXES}.", "Pass axes=\"head\" or \"blender\".")
    start = args.get("start_frame", 1.0)
    if not isinstance(start, (int, float)):
        raise FaceKeyError("bad_argument", f"start_frame {start!r} is not a number.", "Pass the scene frame of sample 0.")
    vpath = _arg(args, "vertices")
    if not os.path.isfile(vpath):
        raise FaceKeyError("file_missing", f"Vertices file not found: {vpath}", "Export the mesh's rest vertices first.")
    with np.load(vpath) as z:
        if "vertices" not in z.files:
            raise FaceKeyError("bad_argument", f"{vpath} has no 'vertices' array.", "Save the rest vertices as 'vertices'.")
        verts = np.asarray(z["vertices"], np.float64)
    if verts.ndim != 2 or verts.shape[1] != 3:
        raise FaceKeyError("bad_argument", f"vertices must be (N, 3), got {verts.shape}.", "Pass the rest vertices.")
    if axes == "blender":
        verts = points_from_blender(verts)
    take, indices = _take_arg(args)
    if args.get("at_rate") and indices is not None:
        raise FaceKeyError("bad_argument", "at_rate samples the whole take; frames / frame pick take frames.",
                           "Pass either at_rate or frames / frame.")
    weights = weights_at_rate(take) if args.get("at_rate") else take.weights
    displacements = blendshape_displacements
    if args.get("serep"):
        from .retarget.serep import SerepRetarget, load_serep
        displacements = SerepRetarget(load_serep(_arg(args, "serep"))).displacements
    progress(Progress(0, 1, "fitting the face and transferring the take"))
    frames = take_to_mesh(weights, verts, displacements=displacements)
    moved = float(np.abs(frames - verts[None]).max()) * 1000
    if axes == "blender":
        frames = points_to_blender(frames)
    first = float(take.timestamps[0]) * take.fps if indices else 0.0
    path = write_pc2(_arg(args, "output"), frames, start_frame=float(start) + first)
    progress(Progress(1, 1, "cache written"))
    return {"pc2": os.path.abspath(path), "samples": int(frames.shape[0]), "points": int(frames.shape[1]),
            "max_displacement_mm": moved, "frames": indices}


def _op_generate(args: dict, progress, cancel) -> dict:
    """One labelled expression clip (Motion3DGAN + S2D-Dec): {label, gan, s2d (weights folders or files;
    null = the bundled ones), output (.npz), seed (int, default 0), fps (default 30), mirror (bool, default false)}
    -> {take, frames, fps, label, seed, apex: {unit: weight} of the last frame's units above 0.05}."""
    from .generation.generate import apex_units, generate_clips
    from .protocol.take import write_take

    seed, fps, mirror = args.get("seed", 0), args.get("fps", 30.0), args.get("mirror", False)
    weights = {name: args.get(name) for name in ("gan", "s2d")}
    if any(w is not None and not isinstance(w, str) for w in weights.values()):
        raise FaceKeyError("bad_argument", f"gan / s2d must be paths or null, got {weights}.",
                           "Leave the weights fields empty for the bundled generators.")
    if not isinstance(seed, int) or isinstance(seed, bool) or not isinstance(fps, (int, float)) or fps <= 0 \
            or not isinstance(mirror, bool):
        raise FaceKeyError("bad_argument", f"seed {seed!r}, fps {fps!r}, mirror {mirror!r}: expected an integer, a "
                           "positive number and true/false.", "Check the Generate settings in the FaceKey panel.")
    progress(Progress(0, 1, "generating the expression clip"))
    take, = generate_clips(_arg(args, "label"), 1, weights["gan"], weights["s2d"], seed=seed,
                           fps=float(fps), mirror=mirror)
    path = write_take(_arg(args, "output"), take)
    progress(Progress(1, 1, "clip written"))
    apex = apex_units(take.weights[-1])
    return {"take": os.path.abspath(path), "frames": take.num_frames, "fps": take.fps, "label": take.header["label"],
            "seed": take.header["seed"], "apex": apex}


def _duration(take) -> float:
    """Seconds covered by the take: last timestamp + one nominal frame."""
    return float(take.timestamps[-1] - take.timestamps[0] + 1.0 / take.fps)


def _detect_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _protocol_stdout():
    """Keep the real stdout for protocol lines; send fd 1 and ``sys.stdout`` to stderr."""
    sys.stdout.flush()
    proto_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(proto_fd, "w", encoding="utf-8", buffering=1)


def _setup_logging() -> None:
    """Log to stderr; also to ``$FACEKEY_LOG`` when stderr is not already that file."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    path = os.environ.get("FACEKEY_LOG")
    if path and not (os.path.exists(path) and os.path.samestat(os.fstat(2), os.stat(path))):
        handlers.append(logging.FileHandler(path, encoding="utf-8"))
    logging.basicConfig(level=logging.INFO, handlers=handlers,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main() -> None:
    faulthandler.enable()       # a native crash leaves its stack in the log (stderr), not just an exit code
    out = _protocol_stdout()
    _setup_logging()
    log.info("FaceKey backend %s starting (pid %d, python %s)", __version__, os.getpid(), sys.executable)
    Worker(sys.stdin.buffer, out, exit_when_orphaned=True).serve(_detect_device())


if __name__ == "__main__":
    main()
