"""CoMA (Ranjan et al. 2018), the papers' data set, as labelled motions on the built-in 478-point face.

The user points at their own copy (nothing is downloaded):
``ROOT/<subject>/<label>/<label>.<frame>.ply``, FLAME topology (5023
vertices, metres, head frame: x = subject's left, y up, z out of the face),
one folder per subject and per expression; the label folders carry the 12
names of :data:`backend.protocol.labels.LABELS`.  Other folders are ignored.

**Correspondence.**  Every CoMA mesh has the same topology, so the map from
FLAME vertices to our 478 points is built once, on the mean of the
subjects' neutrals (each subject's first frame; the mean face is the one
our model fits best): the built-in model is fitted to that mesh
(:func:`backend.retarget.mesh_transfer.fit_face`: similarity + identity,
ICP) and each fitted point is tied to its closest point on the FLAME
surface (triangle + barycentric weights).  The registration is ICP, with a
few millimetres of slop along the surface: maps built on the FLAME template
and fitted afresh to three MultiREX FLAME neutrals agree within 2.8-3.6 mm
(mean over the 468 skin points), and a face far from the model's prior
(identity coefficients of 0.8 standard deviations on every component) is
matched 6-8 mm off.  The 10 iris points hold their neutral place: CoMA's eyes do not turn (no
gaze in the data, as in the built-in model's expression units), and tied to
the closest FLAME triangle they would follow the lids (an eyebrow raise read
back as eyeLookUp 0.4).  Each subject's own frame comes
from a similarity fit (Umeyama) of the canonical neutral to its mapped
neutral; motions are rotated and scaled into the model frame with it, so a
larger head's motion is not a larger expression.

**Clips.**  The paper cut each sequence by hand into 30-frame sub-sequences
from the neutral to the apex frame.  Here the cut is automatic on the
motion's size ``m(t)`` (mean distance of the 478 points from the sequence's
first frame): an apex is the largest ``m`` of a stretch of frames above
half the sequence's largest (not the first bump on the way up: a hesitation
there would end the clip short of the expression), at least
:data:`MIN_APEX_GAP` frames after the last one; its onset is the last frame
before it, after the previous apex, where ``m`` falls to a tenth of the
apex's.  The frames from onset to apex are
resampled to ``frames`` (linear in time) and made displacements from the
onset frame, so every clip starts at exactly zero like the generator's.
As in the paper, the first clip of each subject and expression is held out
(``part="test"``) and the rest train (``part="train"``).

Arrays: a :class:`training.motion3dgan.data.Motions` (metres, model frame):
``dense`` (N, frames, 478, 3), ``landmarks`` (N, frames, 68, 3),
``neutral`` (N, 478, 3) the subject's neutral in the model frame,
``labels`` (N,); ``weights`` is None (CoMA has no ARKit ground truth;
:func:`backend.generation.generate.weights_from_dense` reads them back from
``dense`` where wanted).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from backend.facemodel import load_face_model
from backend.facemodel.canonical import NUM_MESH
from backend.protocol.clipfolder import natural_sort_key
from backend.protocol.errors import FaceKeyError
from backend.protocol.labels import LABELS
from backend.tracking.ibug68 import MEDIAPIPE_TO_IBUG68

from .data import Motions

__all__ = ["FlameMap", "flame_map", "read_ply_vertices", "coma_sequences", "onset_apex_segments", "coma_motions",
           "MotionSets", "motion_sets", "MIN_APEX_GAP"]

#: Frames between two apexes of one sequence (CoMA is captured at 60 fps: a quarter second).
MIN_APEX_GAP = 15
#: An apex's motion is at least this share of the sequence's largest.
APEX_SHARE = 0.5
#: The onset is where the motion falls to this share of its apex's.
ONSET_SHARE = 0.1


@dataclasses.dataclass
class FlameMap:
    """Our 478 points on a FLAME-topology mesh: ``triangles`` (478, 3) vertex indices and
    ``barycentric`` (478, 3) weights; ``rms_m`` the model fit's error on the mesh it was built on."""

    triangles: np.ndarray
    barycentric: np.ndarray
    rms_m: float

    def points(self, vertices: np.ndarray) -> np.ndarray:
        """(..., V, 3) FLAME-topology vertices -> (..., 478, 3) our points on them (same frame and units)."""
        v = np.asarray(vertices, np.float64)
        return np.einsum("...pkc,pk->...pc", v[..., self.triangles, :], self.barycentric)


def flame_map(neutral: np.ndarray, triangles: np.ndarray) -> FlameMap:
    """Build the map on one neutral mesh: ``neutral`` (V, 3) metres, head frame; ``triangles`` (F, 3).

    Raises FaceKeyError ``face_not_found`` when the model does not fit the mesh (see ``fit_face``).
    """
    from backend.retarget.mesh_transfer import closest_on_triangles, fit_face

    fit = fit_face(neutral)
    tris = np.asarray(triangles, np.int64)
    _, tri, bary = closest_on_triangles(fit.points.astype(np.float64), np.asarray(neutral, np.float64), tris)
    return FlameMap(triangles=tris[tri], barycentric=bary, rms_m=fit.rms_m)


def read_ply_vertices(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) float64 and triangles (F, 3) int64 of a .ply mesh, as stored (no merging)."""
    import trimesh

    try:
        mesh = trimesh.load(str(path), process=False, force="mesh")
    except Exception as e:  # trimesh raises many kinds on a corrupt file
        raise FaceKeyError("bad_argument", f"cannot read the mesh {path}: {e}",
                           "Point --coma at CoMA's registered .ply sequences.") from e
    return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)


def coma_sequences(root: str | Path) -> list[tuple[str, str, list[Path]]]:
    """``[(subject, label, frame files in order)]`` under ``root``, subjects and labels sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FaceKeyError("file_missing", f"CoMA folder not found: {root}",
                           "Point --coma at the folder holding the FaceTalk_* subject folders.")
    out = []
    for subject in sorted(p for p in root.iterdir() if p.is_dir()):
        for label in LABELS:
            frames = sorted((subject / label).glob("*.ply"), key=lambda p: natural_sort_key(p.name))
            if frames:
                out.append((subject.name, label, frames))
    if not out:
        raise FaceKeyError("bad_argument", f"no CoMA sequences under {root}",
                           f"Expected {root}/<subject>/<label>/<label>.<frame>.ply with labels among: "
                           f"{', '.join(LABELS)}.")
    return out


def onset_apex_segments(motion: np.ndarray) -> list[tuple[int, int]]:
    """``[(onset, apex)]`` frame pairs of a sequence from its motion size ``motion`` (T,) (module doc)."""
    m = np.asarray(motion, np.float64)
    if len(m) < 3 or m.max() <= 0:
        return []
    high = m >= APEX_SHARE * m.max()
    segments, last, t = [], -MIN_APEX_GAP, 1
    while t < len(m):
        if not high[t]:
            t += 1
            continue
        end = t
        while end + 1 < len(m) and high[end + 1]:
            end += 1
        apex = t + int(np.argmax(m[t:end + 1]))          # the top of this stretch, not its first bump
        below = np.flatnonzero(m[max(last, 0):apex] <= ONSET_SHARE * m[apex])
        if len(below) and apex - last >= MIN_APEX_GAP:
            segments.append((max(last, 0) + int(below[-1]), apex))
            last = apex
        t = end + 1
    return segments


def _resample(x: np.ndarray, frames: int) -> np.ndarray:
    """(T, ...) -> (frames, ...) by linear interpolation in time."""
    pos = np.linspace(0.0, len(x) - 1, frames)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(x) - 1)
    f = (pos - lo).reshape((-1,) + (1,) * (x.ndim - 1))
    return x[lo] * (1.0 - f) + x[hi] * f


def coma_motions(root: str | Path, frames: int = 30, part: str = "train",
                 progress: Optional[Callable[[str], None]] = None) -> Motions:
    """Labelled neutral-to-apex clips of a CoMA folder (see the module doc).

    Args:
        root: the CoMA folder (subject folders inside).
        frames: frames per clip.
        part: "train" (every clip but the first of each sequence), "test" (the first ones) or "all".
        progress: called with a line per sequence read.

    Raises:
        FaceKeyError: ``file_missing`` / ``bad_argument`` for a missing or empty folder or an unreadable
        mesh, ``face_not_found`` when the model does not fit the mean neutral, ``bad_argument`` when a
        mesh's topology differs from the first subject's or no clip was found.
    """
    from backend.retarget.mesh_transfer import umeyama

    if part not in ("train", "test", "all"):
        raise ValueError(f"part must be 'train', 'test' or 'all', not {part!r}")
    model = load_face_model()
    canonical = model.neutral.astype(np.float64)[:NUM_MESH]
    sequences = coma_sequences(root)
    firsts = {}
    for subject, label, files in sequences:
        firsts.setdefault(subject, files[0])
    neutrals = [read_ply_vertices(f) for f in firsts.values()]
    topology = neutrals[0][1]

    def check(meshes, where: str) -> None:
        if any(v.shape != neutrals[0][0].shape or not np.array_equal(t, topology) for v, t in meshes):
            raise FaceKeyError("bad_argument", f"{where} does not share the first subject's mesh topology",
                               "Use CoMA's registered meshes (one FLAME topology for every frame).")

    check(neutrals, "a subject's first frame")
    fmap = flame_map(np.mean([v for v, _ in neutrals], axis=0), topology)
    subject_frame: dict[str, tuple[float, np.ndarray, np.ndarray]] = {}
    dense, neutral, labels = [], [], []
    for subject, label, files in sequences:
        if progress:
            progress(f"CoMA {subject}/{label}: {len(files)} frames")
        meshes = [read_ply_vertices(f) for f in files]
        check(meshes, f"{subject}/{label}")
        pts = fmap.points(np.stack([v for v, _ in meshes]))                     # (T, 478, 3) CoMA frame
        if subject not in subject_frame:
            subject_frame[subject] = umeyama(canonical, pts[0, :NUM_MESH])
        s, r, t = subject_frame[subject]
        model_pts = (pts - t) @ r / s                                           # model frame
        model_pts[:, NUM_MESH:] = model_pts[:1, NUM_MESH:]                      # irises: see the module doc
        size = np.linalg.norm(model_pts - model_pts[:1], axis=-1).mean(-1)
        segments = onset_apex_segments(size)
        keep = {"train": segments[1:], "test": segments[:1], "all": segments}[part]
        for onset, apex in keep:
            clip = _resample(model_pts[onset:apex + 1], frames)
            dense.append(clip - clip[:1])
            neutral.append(model_pts[0])
            labels.append(LABELS.index(label))
    if not dense:
        raise FaceKeyError("bad_argument", f"no {part} clip found under {root}",
                           "Each sequence needs a clear neutral-to-apex motion; the 'train' part needs sequences "
                           "with two or more apexes (the first one of each is held out).")
    dense_arr = np.stack(dense).astype(np.float32)
    return Motions(dense=dense_arr, landmarks=dense_arr[:, :, list(MEDIAPIPE_TO_IBUG68)].copy(),
                   neutral=np.stack(neutral).astype(np.float32), weights=None, labels=np.asarray(labels, np.int64))


@dataclasses.dataclass
class MotionSets:
    """What a generator trains and is evaluated on: ``train`` motions, ``heldout`` motions (None: the
    trainer's own synthetic held-out set), and their names for the saved config (``data``: "synthetic"
    or "coma:<root>"; ``heldout_name``: "synthetic" or "coma:test")."""

    train: Motions
    heldout: Optional[Motions]
    data: str
    heldout_name: str


def motion_sets(coma: str | Path | None, frames: int, synthetic: Callable[[], Motions]) -> MotionSets:
    """CoMA's train / test clips of ``frames`` frames when ``coma`` names a folder, else ``synthetic()``
    to train on (and no held-out set: the trainer's synthetic one)."""
    if coma is None:
        return MotionSets(synthetic(), None, "synthetic", "synthetic")
    return MotionSets(coma_motions(coma, frames, "train"), coma_motions(coma, frames, "test"), f"coma:{coma}",
                      "coma:test")
