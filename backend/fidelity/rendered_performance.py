"""A real ARKit performance on a real ARKit rig, rendered and captured: per-unit weights against the truth.

The realdata folder holds a Live Link Face recording (iPhone ARKit weights, 328 rows at 60 fps, no
video) and the head it was made for (:data:`~.reference_rig.REFERENCE_RIG`, 51 ARKit keys).  Baking
the recording onto the head and rendering it from the front gives footage whose every frame has known
ARKit weights, set by Apple's tracker on a real face and shown through one artist's keys: the only
ground truth here where a weight means what ARKit means by it.  The capture (tracker + default solver,
as ``facekey capture`` runs them) solves the frames as one clip, and each unit's captured curve is
compared with the recording's.

Caveats, so the numbers are read rightly: the head is a grey mask (Workbench, no texture, no eyeballs:
its eye holes show the background, so the eye units see lids only), and the keys are one artist's
shapes, so a unit that moves the face differently from ours reads differently for that reason too.
The correlation (does the curve rise and fall with the truth) is robust to both; the ratio (how much
of the truth's weight the capture reads) is where unit size and unit mix-ups show.

Per unit whose true curve spans at least :data:`MIN_RANGE` over the rendered rows:

* ``corr``: Pearson correlation of the captured curve with the truth (None when the captured curve
  is flat);
* ``ratio``: least-squares factor through the origin, ``sum(ours * truth) / sum(truth^2)``: 1 = the
  capture reads the truth's weight, 0.5 = half of it;
* ``mae``: mean absolute difference.

And over all 52 units: ``mae``, and the share of frames where some unit is at 1 (``saturated``) in the
capture and in the truth.

The recording has no head motion (its head columns are 0), so a second pass adds a known head turn
(:func:`head_turn`: yaw to +-45 degrees, pitch +-12, roll +-8, one sweep; the render's camera orbits
the face) and scores the captured head rotation (:func:`compare_rotations`) beside the weights under
the turn.  The synthetic benchmark projects our own model's points, so it cannot show how the tracker
reads a turned face; this pass does, on a head that is not our model.

:func:`performance_on_rig` is the same measurement on any character and performance
(``facekey bench rendered``): how the capture reads a user's own rig, through that rig's keys, with
the units the rig has no key for left out of the scores.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from backend.protocol.errors import FaceKeyError

from .reference_rig import REFERENCE_RIG
from .synthetic_scores import rotation_error_deg, unit_correlation

__all__ = ["PERFORMANCE_CSV", "MIN_RANGE", "SATURATED", "TURN_DEG", "compare_weights", "head_turn",
           "compare_rotations", "STILL_HEAD_DEG", "performance_on_rig", "rendered_performance"]

#: The Live Link Face recording under realdata (made for the reference rig's head).
PERFORMANCE_CSV = "blendshape_recordings/livelinkface_MySlate_3_Jason_Millers_iPhone.csv"
#: Smallest span (max - min) of a true curve for the unit to be scored on its own.
MIN_RANGE = 0.2
#: A weight at or above this counts as saturated.
SATURATED = 0.99
#: Rendered image side, pixels, and the row step of each size.
IMAGE_SIDE = 480
ROW_STEP = {"quick": 16, "default": 4}
#: Amplitudes (degrees) of the head turn of the pose pass: yaw, pitch, roll.
TURN_DEG = (45.0, 12.0, 8.0)
#: |yaw| bands (degrees) the rotation error is also given for (the last for a recording's own turn).
YAW_BANDS = ((0.0, 15.0), (15.0, 30.0), (30.0, 45.0), (45.0, 180.0))


def compare_weights(ours: np.ndarray, truth: np.ndarray, names) -> dict:
    """Score captured weights against true ones (see the module docstring).

    Args:
        ours: (T, U) captured weights in [0, 1].
        truth: (T, U) true weights in [0, 1], the same rows and units.
        names: (U,) unit names.

    Returns:
        ``{"frames", "mae", "saturated": {"ours", "truth"}, "units": {name: {"corr", "ratio", "mae",
        "truth_max", "ours_max"}}}``, the units those whose true span is at least :data:`MIN_RANGE`.
    """
    ours, truth = np.asarray(ours, np.float64), np.asarray(truth, np.float64)
    if ours.shape != truth.shape or ours.ndim != 2 or len(names) != ours.shape[1]:
        raise ValueError(f"ours {ours.shape} and truth {truth.shape} must both be (T, {len(names)})")
    corrs = unit_correlation(ours, truth)
    units = {}
    for u, name in enumerate(names):
        t, o = truth[:, u], ours[:, u]
        if np.ptp(t) < MIN_RANGE:
            continue
        units[name] = {"corr": None if np.isnan(corrs[u]) else round(float(corrs[u]), 3),
                       "ratio": round(float(o @ t / (t @ t)), 3), "mae": round(float(np.abs(o - t).mean()), 4),
                       "truth_max": round(float(t.max()), 3), "ours_max": round(float(o.max()), 3)}
    return {"frames": int(len(ours)), "mae": round(float(np.abs(ours - truth).mean()), 4),
            "saturated": {"ours": round(float((ours >= SATURATED).any(1).mean()), 3),
                          "truth": round(float((truth >= SATURATED).any(1).mean()), 3)},
            "units": units}


def head_turn(num_frames: int) -> np.ndarray:
    """(T, 4) float32 quaternions (w, x, y, z; the Take's head rotation) of one sweep over ``num_frames``:
    yaw ``TURN_DEG[0] sin(2 pi s)``, pitch ``TURN_DEG[1] sin(4 pi s)``, roll ``TURN_DEG[2] sin(2 pi s + 1)``
    degrees, ``s`` from 0 to 1."""
    from backend.protocol.rotations import ypr_to_quat

    s = np.linspace(0.0, 1.0, num_frames)
    yaw, pitch, roll = (np.deg2rad(a) * np.sin(w * np.pi * s + p)
                        for a, w, p in zip(TURN_DEG, (2.0, 4.0, 2.0), (0.0, 0.0, 1.0)))
    return ypr_to_quat(yaw, pitch, roll).astype(np.float32)


def compare_rotations(ours: np.ndarray, truth: np.ndarray) -> dict:
    """Score captured head rotations against true ones.

    The head at rest need not face the camera as our model's rest pose does, so the constant offset
    ``truth^-1 ours`` (its mean rotation over the frames, in the head frame) is taken out first; the error
    of a frame is then the angle between ``ours`` and ``truth * offset``.  A constant bias of the capture
    goes with the offset: the scores are of how the capture follows the turn.  The capture assumes the
    solver's default field of view (not the render's), as ``facekey capture`` would.

    Args:
        ours: (T, 4) captured quaternions (w, x, y, z).
        truth: (T, 4) true quaternions, the same frames.

    Returns:
        ``{"median_deg", "p90_deg", "by_yaw": {"0-15": [median degrees or None, frames], ...}, "per_axis":
        {"yaw", "pitch", "roll"}}``: ``by_yaw`` over the frames whose true |yaw| is in the band (each band
        includes its upper end, the first also 0); ``per_axis`` the least-squares factor captured / true of each angle
        about its mean (1 = the turn is read at its full size; None for an angle the truth holds still).
    """
    from scipy.spatial.transform import Rotation

    from backend.protocol.rotations import quat_to_ypr

    def rot(q):
        return Rotation.from_quat(np.asarray(q, np.float64)[:, [1, 2, 3, 0]])

    o, t = rot(ours), rot(truth)
    offset = (t.inv() * o).mean()
    err = rotation_error_deg(np.asarray(ours, np.float64), (t * offset).as_quat()[:, [3, 0, 1, 2]])
    true_ypr = np.rad2deg(quat_to_ypr(np.asarray(truth, np.float64)))
    yo = np.rad2deg(quat_to_ypr((o * offset.inv()).as_quat()[:, [3, 0, 1, 2]]))
    yt, yo = true_ypr - true_ypr.mean(0), yo - yo.mean(0)
    per_axis = {n: round(float(yo[:, i] @ yt[:, i] / (yt[:, i] @ yt[:, i])), 3) if np.ptp(yt[:, i]) > 1e-3 else None
                for i, n in enumerate(("yaw", "pitch", "roll"))}
    ayaw = np.abs(true_ypr[:, 0])
    by_yaw = {}
    for k, (lo, hi) in enumerate(YAW_BANDS):
        band = ((ayaw > lo) if k else (ayaw >= lo)) & (ayaw <= hi)
        by_yaw[f"{lo:g}-{hi:g}"] = [round(float(np.median(err[band])), 2) if band.any() else None, int(band.sum())]
    return {"median_deg": round(float(np.median(err)), 2), "p90_deg": round(float(np.percentile(err, 90)), 2),
            "by_yaw": by_yaw, "per_axis": per_axis}


def _render_and_capture(truth, rig_path: Path, name: str, step: int, blender, turn: bool, name_map: tuple,
                        image_side: int, keep: Optional[Path]):
    """Render every ``step``-th row of ``truth`` on ``name`` (turned by its head rotation when ``turn``)
    and capture the frames as one clip: ``(rendered rows (R,), captured Take, ARKit names the object has a
    key for)``.  With ``keep`` (a folder) the performance (``performance.npz``), the frames (``frames/``)
    and the captured take (``captured.npz``, one frame per rendered row) are left there."""
    from backend.blender_runner import render_take_rows
    from backend.estimators import SolverSettings, get_estimator
    from backend.footage import open_footage
    from backend.protocol.take import write_take
    from backend.tracking import track_footage

    with tempfile.TemporaryDirectory(prefix="facekey-rendered-") as tmp:
        folder = Path(tmp) if keep is None else Path(keep)
        frames = folder / "frames"
        if frames.is_dir() and any(frames.iterdir()):
            raise FaceKeyError("bad_argument", f"{frames} already holds files; the capture would read them too",
                               "Pass a new or empty folder to keep the frames in.")
        folder.mkdir(parents=True, exist_ok=True)
        take_path = write_take(folder / "performance.npz", truth)
        rendered = render_take_rows(take_path, rig_path, name, frames, every=step, size=image_side,
                                    name_map=name_map[0], map_path=name_map[1], turn=turn, blender=blender,
                                    timeout=600)
        track = track_footage(open_footage(str(frames / "row_*.png"), fps=truth.fps / step))
        take = get_estimator("solver").estimate(track, SolverSettings())
        if keep is not None:
            write_take(folder / "captured.npz", take)
    return np.asarray(rendered["rows"]), take, rendered["units"]


def _scored(take, truth, rows, keyed) -> tuple[np.ndarray, dict]:
    """(scored rows mask, :func:`compare_weights` of the units in ``keyed``) of a captured ``take`` against
    the ``truth`` rows it shows; a row is scored where the capture found the face and the performance's
    row is valid (the bake skips invalid rows, so what renders there is the neighbours' blend, not the
    row's weights)."""
    from backend.protocol.arkit import INDEX

    found = np.asarray(take.valid, bool) & np.asarray(truth.valid, bool)[rows]
    cols = [INDEX[n] for n in keyed]
    return found, compare_weights(take.weights[found][:, cols], truth.weights[rows][found][:, cols], keyed)


def _tracked(found, truth, rows) -> list[int]:
    """[scored rows (``found``), rendered rows the performance holds valid]."""
    return [int(found.sum()), int(np.asarray(truth.valid, bool)[rows].sum())]


#: A performance whose head rotation stays within this angle (degrees) of its first frame holds its head
#: still: its turned pass shows :func:`head_turn` instead.
STILL_HEAD_DEG = 1.0


def _head_is_still(truth) -> bool:
    """Whether every valid frame's head rotation of ``truth`` is within :data:`STILL_HEAD_DEG` of the first's."""
    q = np.asarray(truth.head_rotation, np.float64)[np.asarray(truth.valid, bool)]
    return len(q) == 0 or float(rotation_error_deg(q, np.repeat(q[:1], len(q), 0)).max()) <= STILL_HEAD_DEG


def performance_on_rig(truth, rig_path: Path, object_name: str, step: int, *, turn: bool = True,
                       name_map: tuple = ("auto", None), image_side: int = IMAGE_SIDE,
                       blender: Optional[str] = None, keep: Optional[Path] = None) -> dict:
    """Render a performance on a character, capture it, and score the capture against the performance.

    Args:
        truth: the performance, a Take (a Live Link Face recording, a captured or generated take): its
            weights are the truth.
        rig_path: the character, a .blend or a .glb; ``object_name``: its mesh with ARKit shape keys, matched as
            a bake matches them by ``name_map`` = (kind: auto | arkit | livelink | custom, the custom map's
            JSON path or None).
        step: every ``step``-th row of ``truth`` is rendered.
        turn: also render and score a second pass with the head turned: by the performance's own head
            rotation, or by :func:`head_turn` where the performance holds its head still (a Live Link Face
            recording without head columns).
        image_side: rendered image side, pixels.
        keep: a folder to leave each pass's performance, frames and captured take in (``frontal/`` and
            ``turned/``: ``performance.npz``, ``frames/row_<row>.png``, ``captured.npz``), to look at or
            bake; None = nothing kept.

    Returns:
        :func:`compare_weights`'s dict of the frontal pass over the units the object has a key for (a unit
        it cannot show is not scored, nor a row the performance marks invalid) plus ``{"object",
        "keyed_units", "row_step", "image_side", "tracked", "head_turn"}`` (``tracked``: [scored rows: valid in
        the performance and the face found, rendered rows valid in the performance]; ``head_turn``: ``{"turn_deg"
        ([yaw, pitch, roll] amplitudes of :func:`head_turn`, or None for the performance's own turn),
        "tracked", "weights_mae", "rotation"}`` with ``rotation`` as :func:`compare_rotations`, or
        ``{"skipped": reason}`` when only that pass failed; absent without ``turn``).

    Raises:
        FaceKeyError: the character cannot be rendered (file, object or keys missing, Blender not found).
    """
    import dataclasses

    kept = (lambda sub: None if keep is None else Path(keep) / sub)
    rows, take, keyed = _render_and_capture(truth, rig_path, object_name, step, blender, False, name_map, image_side,
                                            kept("frontal"))
    found, out = _scored(take, truth, rows, keyed)
    out.update({"object": object_name, "keyed_units": len(keyed), "row_step": step, "image_side": image_side,
                "tracked": _tracked(found, truth, rows)})
    if not turn:
        return out
    sweep = _head_is_still(truth)
    if sweep:
        truth = dataclasses.replace(truth, head_rotation=head_turn(len(truth.timestamps)))
    try:
        turn_rows, turn_take, _ = _render_and_capture(truth, rig_path, object_name, step, blender, True, name_map,
                                                      image_side, kept("turned"))
    except FaceKeyError as e:
        out["head_turn"] = {"skipped": f"{e.message} (turned)"}
        return out
    turn_found, turn_scores = _scored(turn_take, truth, turn_rows, keyed)
    out["head_turn"] = {"turn_deg": list(TURN_DEG) if sweep else None,
                        "tracked": _tracked(turn_found, truth, turn_rows), "weights_mae": turn_scores["mae"],
                        "rotation": compare_rotations(turn_take.head_rotation[turn_found],
                                                      truth.head_rotation[turn_rows][turn_found])}
    return out


def rendered_performance(realdata: Path, size: str = "default", blender: Optional[str] = None) -> dict:
    """The shared Live Link Face recording on the reference head (every ``ROW_STEP[size]``-th row), frontal
    and again with :func:`head_turn` added, scored by :func:`performance_on_rig`.

    Returns:
        :func:`performance_on_rig`'s dict plus ``{"recording", "rig"}``, or ``{"skipped": reason}`` when a
        file is absent or Blender cannot render it.
    """
    from backend.protocol.livelink import read_livelink_csv

    rel_rig, name = REFERENCE_RIG
    csv_path, rig_path = Path(realdata) / PERFORMANCE_CSV, Path(realdata) / rel_rig
    for rel, p in ((PERFORMANCE_CSV, csv_path), (rel_rig, rig_path)):
        if not p.is_file():
            return {"skipped": f"{rel} absent"}
    try:
        out = performance_on_rig(read_livelink_csv(csv_path), rig_path, name, ROW_STEP[size], blender=blender)
    except FaceKeyError as e:
        return {"skipped": f"{e.message} ({rel_rig})"}
    out.update({"recording": PERFORMANCE_CSV, "rig": rel_rig})
    return out
