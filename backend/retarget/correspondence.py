"""Where the built-in model's 478 points lie on a character's face (numpy only).

Three anchors (left eye, right eye, mouth) are found the same way on both
faces: the motion-weighted centroid of the vertices that a semantic key
(blink, mouth open) moves by at least half its largest motion.  On the
built-in model the keys are its own units; on the character they are found
by name (ARKit, VRoid ``Fcl_*``, visemes) or replaced by anchor vertex sets
the user picked.  The anchors give a frontal map (x scale from the eye
distance, y scale from the eyes-to-mouth distance, translation from the
eye midpoint, z scale their geometric mean), which places the 478 points
near the character's face; each is then projected along z onto the
character's skin (the largest connected piece of its mesh; the layer
nearest in depth).  Points that hit no triangle are dropped.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..protocol.errors import FaceKeyError
from ..protocol.keytake import ANCHOR_NAMES, CharacterKeys
from ..protocol.namemap import normalize_name

__all__ = ["SurfacePoints", "ANCHOR_KEYS", "MODEL_ANCHOR_UNITS", "motion_centroid", "character_anchors",
           "model_anchors", "frontal_map", "project_frontal", "find_correspondence"]

#: Character key names (first present wins) whose motion marks each anchor.
ANCHOR_KEYS = {
    "eye_left": ("eyeBlinkLeft", "EyeBlinkLeft", "eyeBlink_L", "EyeBlink_L", "Fcl_EYE_Close_L", "blink_L", "Blink_L"),
    "eye_right": ("eyeBlinkRight", "EyeBlinkRight", "eyeBlink_R", "EyeBlink_R", "Fcl_EYE_Close_R", "blink_R", "Blink_R"),
    "mouth": ("jawOpen", "JawOpen", "Fcl_MTH_A", "viseme_aa", "MouthOpen", "mouthOpen", "vrc.v_aa", "A"),
}
#: The built-in unit marking each anchor (ARKit index order names).
MODEL_ANCHOR_UNITS = {"eye_left": "eyeBlinkLeft", "eye_right": "eyeBlinkRight", "mouth": "jawOpen"}


@dataclasses.dataclass(frozen=True)
class SurfacePoints:
    """Points on a character mesh matched to built-in model points.

    Attributes:
        model_index: (P,) int indices into the model's 478 points.
        triangle: (P,) int rows of the character's ``triangles``.
        bary: (P, 3) float barycentric coordinates in that triangle.
        scale: (3,) float, character size / model size along head x, y, z.
        anchor_source: "keys" (semantic keys) or "user" (picked vertices).
    """

    model_index: np.ndarray
    triangle: np.ndarray
    bary: np.ndarray
    scale: np.ndarray
    anchor_source: str

    def positions(self, rest: np.ndarray, triangles: np.ndarray) -> np.ndarray:
        """(P, 3) surface positions of the points on vertices ``rest`` (N, 3)."""
        return np.einsum("pc,pcd->pd", self.bary, rest[triangles[self.triangle]])

    def interpolate(self, per_vertex: np.ndarray, triangles: np.ndarray) -> np.ndarray:
        """(..., N, 3) per-vertex vectors -> (..., P, 3) at the points (barycentric blend)."""
        corners = per_vertex[..., triangles[self.triangle], :]  # (..., P, 3 corners, 3)
        return np.einsum("pc,...pcd->...pd", self.bary, corners)


def motion_centroid(rest: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """(3,) centroid of ``rest`` (N, 3) weighted by motion ``|delta|`` (N, 3) over vertices moving >= half the most."""
    mag = np.linalg.norm(delta, axis=1)
    top = mag >= 0.5 * mag.max()
    return (rest[top] * mag[top, None]).sum(0) / mag[top].sum()


def character_anchors(ck: CharacterKeys) -> tuple[dict[str, np.ndarray], str]:
    """Anchor positions (3,) on the character and their source ("user" or "keys").

    User-picked anchor sets (``ck.anchors``, all three) win; otherwise the
    first present key of :data:`ANCHOR_KEYS` for each anchor.

    Raises:
        FaceKeyError: ``no_shape_keys`` when an anchor can be found neither way.
    """
    if all(a in ck.anchors for a in ANCHOR_NAMES):
        return {a: ck.rest[ck.anchors[a]].mean(0) for a in ANCHOR_NAMES}, "user"
    out, index = {}, {n: i for i, n in enumerate(ck.key_names)}
    for n, i in list(index.items()):        # any spelling the name maps accept: eyeBlink.L, EYE_BLINK_LEFT
        index.setdefault(normalize_name(n), i)
    for a in ANCHOR_NAMES:
        name = next((n for n in ANCHOR_KEYS[a] for n in (n, normalize_name(n))
                     if n in index and np.abs(ck.deltas[index[n]]).max() > 0), None)
        if name is None:
            raise FaceKeyError(
                "no_shape_keys", f"'{ck.object_name}' has no shape key that marks the {a.replace('_', ' ')} "
                f"(looked for {', '.join(ANCHOR_KEYS[a][:5])}, ...).",
                "Add three vertex groups named facekey_eye_left, facekey_eye_right and facekey_mouth "
                "(a few vertices at each eye's centre and the mouth's centre) and measure again.")
        out[a] = motion_centroid(ck.rest, ck.deltas[index[name]])
    return out, "keys"


def model_anchors(neutral: np.ndarray, unit_deltas: np.ndarray, unit_names) -> dict[str, np.ndarray]:
    """Anchor positions (3,) on the built-in model (neutral (N, 3), unit_deltas (52, N, 3))."""
    names = list(unit_names)
    return {a: motion_centroid(neutral, unit_deltas[names.index(u)]) for a, u in MODEL_ANCHOR_UNITS.items()}


def frontal_map(src: dict, dst: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scale (3,), src origin (3,), dst origin (3,)) mapping ``src`` anchors onto ``dst`` anchors.

    ``p -> dst_origin + scale * (p - src_origin)``; origins are the eye
    midpoints; x scale from the eye distance, y scale from the height of the
    eye midpoint above the mouth, z scale their geometric mean.

    Raises:
        FaceKeyError: ``bad_argument`` when the anchors are degenerate or mirrored.
    """
    so, do = (src["eye_left"] + src["eye_right"]) / 2, (dst["eye_left"] + dst["eye_right"]) / 2
    sx_src, sx_dst = src["eye_left"][0] - src["eye_right"][0], dst["eye_left"][0] - dst["eye_right"][0]
    sy_src, sy_dst = so[1] - src["mouth"][1], do[1] - dst["mouth"][1]
    if min(sx_src, sx_dst, sy_src, sy_dst) <= 0:
        raise FaceKeyError("bad_argument", "The character's eye/mouth anchors are mirrored or degenerate "
                           f"(eye distance {sx_dst:.4g} m, eyes above mouth {sy_dst:.4g} m).",
                           "The face must look along -Y in Blender with Z up, and the left-eye anchor/key must be "
                           "on the character's own left (+X).")
    sx, sy = sx_dst / sx_src, sy_dst / sy_src
    return np.array([sx, sy, np.sqrt(sx * sy)]), so, do


def project_frontal(xyz: np.ndarray, rest: np.ndarray, triangles: np.ndarray, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Project positions onto the mesh along z: of the triangles above or below each
    point's (x, y), the one whose surface depth is nearest the point's own z wins
    (so folds such as eyelids over the eyeball pick the right layer).

    Args:
        xyz: (P, 3) head-frame positions (metres).
        rest: (N, 3) mesh vertices; triangles: (F, 3).

    Returns:
        (triangle (P,) int, -1 on a miss; bary (P, 3) float).
    """
    a, b, c = (rest[triangles[:, i]] for i in range(3))
    e1, e2 = (b - a)[:, :2], (c - a)[:, :2]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    ok = np.abs(det) > 1e-14
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    xy = xyz[:, :2]
    tri_out = np.full(len(xy), -1, np.int64)
    bary_out = np.zeros((len(xy), 3))
    for s in range(0, len(xy), chunk):
        q = xy[s:s + chunk, None, :] - a[None, :, :2]  # (p, F, 2)
        u = (q[..., 0] * e2[:, 1] - q[..., 1] * e2[:, 0]) * inv
        v = (e1[:, 0] * q[..., 1] - e1[:, 1] * q[..., 0]) * inv
        inside = ok & (u >= -1e-9) & (v >= -1e-9) & (u + v <= 1 + 1e-9)
        z = a[:, 2] + u * (b - a)[:, 2] + v * (c - a)[:, 2]
        gap = np.where(inside, np.abs(z - xyz[s:s + chunk, 2:3]), np.inf)
        best = gap.argmin(axis=1)
        hit = np.isfinite(gap[np.arange(len(best)), best])
        rows = np.arange(s, s + len(best))
        tri_out[rows[hit]] = best[hit]
        uu, vv = u[np.arange(len(best)), best], v[np.arange(len(best)), best]
        bary_out[rows] = np.stack([1 - uu - vv, uu, vv], axis=1)
    return tri_out, bary_out


def skin_triangles(triangles: np.ndarray, num_vertices: int) -> np.ndarray:
    """(F,) bool: triangles of the largest connected piece (the skin; eyes, teeth, brows are separate pieces)."""
    label = np.arange(num_vertices)
    while True:
        low = label[triangles].min(axis=1)
        new = label.copy()
        for c in range(3):
            np.minimum.at(new, triangles[:, c], low)
        new = new[new]  # pointer jumping
        if np.array_equal(new, label):
            break
        label = new
    tri_label = label[triangles[:, 0]]
    values, counts = np.unique(tri_label, return_counts=True)
    return tri_label == values[counts.argmax()]


def find_correspondence(ck: CharacterKeys, neutral: np.ndarray, unit_deltas: np.ndarray, unit_names,
                        candidates: np.ndarray | None = None) -> SurfacePoints:
    """Match the built-in model's points (neutral (M, 3), unit_deltas (52, M, 3)) to ``ck``'s surface.

    ``candidates``: (C,) model point indices to match (default all); pass the
    skin points only (the model's triangle vertices), not the iris centres,
    which would land on the character's eyelids.

    Raises:
        FaceKeyError: ``no_shape_keys`` (no anchors), ``bad_argument``
        (mirrored anchors, or fewer than 20 points land on the mesh).
    """
    dst, source = character_anchors(ck)
    scale, so, do = frontal_map(model_anchors(neutral, unit_deltas, unit_names), dst)
    idx = np.arange(len(neutral)) if candidates is None else np.asarray(candidates)
    xyz = do + scale * (neutral[idx] - so)
    skin = np.flatnonzero(skin_triangles(ck.triangles, len(ck.rest)))
    tri, bary = project_frontal(xyz, ck.rest.astype(np.float64), ck.triangles[skin])
    hit = np.flatnonzero(tri >= 0)
    tri = np.where(tri >= 0, skin[np.maximum(tri, 0)], -1)
    if hit.size < 20:
        raise FaceKeyError("bad_argument", f"Only {hit.size} of {len(neutral)} face points land on '{ck.object_name}'.",
                           "Measure the mesh that carries the face surface, facing -Y; or pick the anchor vertex groups.")
    return SurfacePoints(idx[hit], tri[hit], bary[hit], scale, source)
