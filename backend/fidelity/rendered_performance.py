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
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from backend.protocol.errors import FaceKeyError

from .reference_rig import REFERENCE_RIG

__all__ = ["PERFORMANCE_CSV", "MIN_RANGE", "SATURATED", "compare_weights", "rendered_performance"]

#: The Live Link Face recording under realdata (made for the reference rig's head).
PERFORMANCE_CSV = "blendshape_recordings/livelinkface_MySlate_3_Jason_Millers_iPhone.csv"
#: Smallest span (max - min) of a true curve for the unit to be scored on its own.
MIN_RANGE = 0.2
#: A weight at or above this counts as saturated.
SATURATED = 0.99
#: Rendered image side, pixels, and the row step of each size.
IMAGE_SIDE = 480
ROW_STEP = {"quick": 16, "default": 4}


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
    units = {}
    for u, name in enumerate(names):
        t, o = truth[:, u], ours[:, u]
        if np.ptp(t) < MIN_RANGE:
            continue
        corr = float(np.corrcoef(o, t)[0, 1]) if np.ptp(o) > 1e-6 else None
        units[name] = {"corr": None if corr is None else round(corr, 3),
                       "ratio": round(float(o @ t / (t @ t)), 3), "mae": round(float(np.abs(o - t).mean()), 4),
                       "truth_max": round(float(t.max()), 3), "ours_max": round(float(o.max()), 3)}
    return {"frames": int(len(ours)), "mae": round(float(np.abs(ours - truth).mean()), 4),
            "saturated": {"ours": round(float((ours >= SATURATED).any(1).mean()), 3),
                          "truth": round(float((truth >= SATURATED).any(1).mean()), 3)},
            "units": units}


def rendered_performance(realdata: Path, size: str = "default", blender: Optional[str] = None) -> dict:
    """Render the recording on the reference head (every ``ROW_STEP[size]``-th row), capture it, score it.

    Returns:
        :func:`compare_weights`'s dict plus ``{"recording", "rig", "object", "row_step", "image_side",
        "tracked"}`` (``tracked``: frames with a face found, of those rendered), or ``{"skipped": reason}``
        when a file is absent or Blender cannot render it.
    """
    from backend.blender_runner import render_take_rows
    from backend.estimators import SolverSettings, get_estimator
    from backend.footage import open_footage
    from backend.protocol.arkit import ARKIT_NAMES
    from backend.protocol.livelink import read_livelink_csv
    from backend.protocol.take import write_take
    from backend.tracking import track_footage

    rel_rig, name = REFERENCE_RIG
    csv_path, rig_path = Path(realdata) / PERFORMANCE_CSV, Path(realdata) / rel_rig
    for rel, p in ((PERFORMANCE_CSV, csv_path), (rel_rig, rig_path)):
        if not p.is_file():
            return {"skipped": f"{rel} absent"}
    step = ROW_STEP[size]
    truth = read_livelink_csv(csv_path)
    try:
        with tempfile.TemporaryDirectory(prefix="facekey-rendered-") as tmp:
            take_path = write_take(Path(tmp) / "performance.npz", truth)
            rendered = render_take_rows(take_path, rig_path, name, Path(tmp) / "frames", every=step,
                                        size=IMAGE_SIDE, blender=blender, timeout=600)
            track = track_footage(open_footage(str(Path(tmp) / "frames" / "row_*.png"), fps=truth.fps / step))
        take = get_estimator("solver").estimate(track, SolverSettings())
    except FaceKeyError as e:
        return {"skipped": f"{rel_rig}: {e.message}"}
    rows = np.asarray(rendered["rows"])
    found = np.asarray(take.valid, bool)
    out = compare_weights(take.weights[found], truth.weights[rows][found], ARKIT_NAMES)
    out.update({"recording": PERFORMANCE_CSV, "rig": rel_rig, "object": name, "row_step": step,
                "image_side": IMAGE_SIDE, "tracked": [int(found.sum()), int(len(rows))]})
    return out
