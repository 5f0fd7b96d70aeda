"""Move a character mesh of any topology with displacements of the built-in 478-point face.

Correspondence (``fit_face``): the target is assumed in the head frame
(x = subject's left, y = up, z = out of the face) and in metres, like an
exported FLAME head.  The built-in neutral starts with its nose tip (vertex 4)
on the target's most forward vertex; then an ICP loop alternates (1) nearest
target vertex for each of the 468 model skin points (pairs farther than a
shrinking gate are ignored), (2) a similarity transform (Umeyama: scale,
rotation, translation) from the model to the matches and (3) the model's
identity coefficients by ridge least squares (standard-normal prior) in the
model frame.  The result places the fitted 478 points on the target's face.

Transfer (``FaceTransfer``): each target vertex takes the displacement of
its closest point on the fitted model surface (nearest triangle of the 898,
barycentric blend of its three vertices' displacements).  A thin-plate RBF
was tried first and overshoots (45 mm at the lips for a 20 mm jawOpen: the
open canonical lips put points of opposite motion 5 mm apart); the
barycentric map never leaves the range of its three vertices.  The map is
precomputed as one sparse-in-practice (N_target, 468) matrix, so a take of
any length is one matrix product.  Each target vertex's displacement is
scaled by a falloff on its distance to that closest point (1 within
``inner`` = 8 mm, smoothstep to 0 at ``outer`` = 25 mm), so the back of the
head, neck and ears do not move.  Displacements are rotated and scaled from
the model frame into the target frame.

Timing (``weights_at_rate``): a point cache has no timestamps, only samples
played at one rate, while a take keeps each frame's real time (variable-rate
phone footage, frames dropped by a lost face).  A whole-take cache is
therefore sampled on the take's own clock at its nominal rate, sample k at
k / fps seconds, interpolating between the tracked frames as the shape-key
bake's LINEAR keys do, so the cache plays in step with a bake of the same
take.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from backend.facemodel import load_face_model
from backend.facemodel.canonical import NUM_MESH
from backend.protocol.errors import FaceKeyError

__all__ = ["read_obj", "write_deformed_obj", "FaceFit", "fit_face", "FaceTransfer", "closest_on_triangles", "umeyama",
           "blendshape_displacements", "take_to_mesh", "weights_at_rate"]

NOSE_TIP = 4
#: Most cache samples per take frame (beyond a minute's worth) ``weights_at_rate`` writes before calling a
#: take's timestamps broken.
MAX_SAMPLES_PER_FRAME = 4
#: Plausible bounding-box diagonal of a head mesh in metres (a bust or a full body is still < 3 m).
MESH_SIZE_M = (0.08, 3.0)
#: Largest RMS distance (model units, metres) of the fitted face to the target: a head fits within
#: 2 mm (FLAME template 1.8 mm), a mesh turned away or without a face does not.
FIT_RMS_MAX_M = 0.004


def read_obj(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (N, 3) float64 and triangles (F, 3) int64 (polygons fanned) of a Wavefront .obj."""
    p = Path(path)
    if not p.is_file():
        raise FaceKeyError("file_missing", f"Mesh file not found: {p}", "Check the path.")
    verts, tris = [], []
    with p.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith("v "):
                verts.append([float(x) for x in line.split()[1:4]])
            elif line.startswith("f "):
                idx = [int(tok.split("/")[0]) for tok in line.split()[1:]]
                idx = [i - 1 if i > 0 else len(verts) + i for i in idx]
                tris += [[idx[0], idx[k], idx[k + 1]] for k in range(1, len(idx) - 1)]
    if not verts:
        raise FaceKeyError("bad_argument", f"{p} has no vertices", "Pass a Wavefront .obj mesh.")
    return np.asarray(verts, np.float64), np.asarray(tris, np.int64).reshape(-1, 3)


def write_deformed_obj(source: str | Path, output: str | Path, vertices: np.ndarray) -> Path:
    """Copy the .obj ``source`` to ``output`` with its ``v`` lines replaced by ``vertices`` (N, 3), in order.

    Faces, texture coordinates, groups and materials stay as they are (normals are copied unchanged).
    Raises ``bad_argument`` when the vertex counts differ.
    """
    v = np.asarray(vertices, np.float64)
    lines = Path(source).read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    slots = [i for i, line in enumerate(lines) if line.startswith("v ")]
    if v.ndim != 2 or v.shape != (len(slots), 3):
        raise FaceKeyError("bad_argument", f"{len(slots)} vertices in {source} but {v.shape} positions given.",
                           "Write positions of the same mesh.")
    for i, (x, y, z) in zip(slots, v):
        lines[i] = f"v {x:.7g} {y:.7g} {z:.7g}\n"
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(lines), encoding="utf-8")
    return out


@dataclasses.dataclass(frozen=True)
class FaceFit:
    """The built-in model fitted to a target mesh.

    Attributes:
        identity: (K,) identity coefficients; ``neutral`` = model neutral with them, (478, 3) metres, model frame.
        scale, rotation (3, 3), translation (3,): target = scale * rotation @ model + translation.
        points: (478, 3) the fitted model points in the target frame.
        rms_m: RMS distance of the matched skin points to their target vertices, target units.
    """

    identity: np.ndarray
    neutral: np.ndarray
    scale: float
    rotation: np.ndarray
    translation: np.ndarray
    points: np.ndarray
    rms_m: float

    def to_target(self, model_vectors: np.ndarray) -> np.ndarray:
        """(..., 3) displacement vectors in the model frame -> target frame (rotated, scaled)."""
        return self.scale * np.asarray(model_vectors) @ self.rotation.T


def _nearest(points: np.ndarray, cloud: np.ndarray, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Distance (P,) and index (P,) of each point's nearest cloud point (brute force, chunked)."""
    dist, idx = np.empty(len(points)), np.empty(len(points), np.int64)
    c2 = (cloud ** 2).sum(1)
    for i in range(0, len(points), chunk):
        p = points[i:i + chunk]
        d2 = (p ** 2).sum(1)[:, None] - 2 * p @ cloud.T + c2[None]
        idx[i:i + chunk] = d2.argmin(1)
        dist[i:i + chunk] = np.sqrt(np.maximum(d2[np.arange(len(p)), idx[i:i + chunk]], 0.0))
    return dist, idx


def closest_on_triangles(points: np.ndarray, verts: np.ndarray, tris: np.ndarray,
                         chunk: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closest surface point of each point: ``(distance (P,), triangle (P,), barycentric (P, 3))``.

    Exact point-triangle distance (Ericson's region tests done as clamped
    projections on the face and on the three edges), brute force over all triangles.
    """
    a, b, c = (verts[tris[:, k]] for k in range(3))            # (F, 3)
    n = np.cross(b - a, c - a)
    nn = np.maximum((n ** 2).sum(1), 1e-30)
    out_d = np.empty(len(points))
    out_t = np.empty(len(points), np.int64)
    out_b = np.empty((len(points), 3))
    for i in range(0, len(points), chunk):
        p = points[i:i + chunk, None, :]                         # (P, 1, 3)
        # projection on the plane and its barycentrics
        w_c = (np.cross(b - a, p - a) * n).sum(-1) / nn
        w_b = (np.cross(p - a, c - a) * n).sum(-1) / nn
        w_a = 1 - w_b - w_c
        cands = [np.stack([w_a, w_b, w_c], -1)]
        inside = (cands[0] >= 0).all(-1)
        for (u, v, iu, iv) in ((a, b, 0, 1), (b, c, 1, 2), (c, a, 2, 0)):
            e = v - u
            t = np.clip(((p - u) * e).sum(-1) / np.maximum((e ** 2).sum(-1), 1e-30), 0.0, 1.0)
            bc = np.zeros(t.shape + (3,))
            bc[..., iu] = 1 - t
            bc[..., iv] = t
            cands.append(bc)
        pos = [np.einsum("pfk,fkd->pfd", bc, np.stack([a, b, c], 1)) for bc in cands]
        d = np.stack([np.linalg.norm(q - p, axis=-1) for q in pos])   # (4, P, F)
        d[0][~inside] = np.inf
        k = d.argmin(0)                                               # (P, F)
        dmin = np.take_along_axis(d, k[None], 0)[0]
        f = dmin.argmin(1)
        rows = np.arange(len(f))
        out_d[i:i + chunk] = dmin[rows, f]
        out_t[i:i + chunk] = f
        out_b[i:i + chunk] = np.stack(cands)[k[rows, f], rows, f]
    return out_d, out_t, out_b


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """``(s, R, t)``: the similarity ``dst ~ s R src + t`` fitting (P, 3) point sets best (least squares)."""
    cs, cd = src.mean(0), dst.mean(0)
    a, b = src - cs, dst - cd
    u, sig, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    r = u @ d @ vt
    s = float(np.trace(np.diag(sig) @ d) / (a ** 2).sum(1).mean())
    return s, r, cd - s * r @ cs


#: Head orientations tried as ICP starts (model -> target rotations): the face looking along
#: +z (the expected head frame), -z, +-x, and +-y (a Y-up head read as Z-up or the reverse).
_STARTS = tuple(np.array(m, np.float64) for m in (
    [[1, 0, 0], [0, 1, 0], [0, 0, 1]], [[-1, 0, 0], [0, 1, 0], [0, 0, -1]],
    [[0, 0, 1], [0, 1, 0], [-1, 0, 0]], [[0, 0, -1], [0, 1, 0], [1, 0, 0]],
    [[1, 0, 0], [0, 0, -1], [0, 1, 0]], [[1, 0, 0], [0, 0, 1], [0, -1, 0]]))
#: ICP iterations per start before the best start is refined.
_START_ITERATIONS = 8


def _icp(tv: np.ndarray, m, r: np.ndarray, ident: np.ndarray, s: float, t: np.ndarray, iterations: int,
         total: int, first: int, ridge: float):
    """ICP iterations ``first .. first + iterations`` of :func:`fit_face` from a pose; returns (s, r, t, ident, rms)."""
    basis = m.identity_basis[:, :NUM_MESH].astype(np.float64)          # (K, 468, 3)
    bmat = basis.reshape(len(basis), -1).T                             # (468*3, K)
    neutral = m.neutral.astype(np.float64) + np.tensordot(ident, m.identity_basis, axes=1)
    rms = np.inf
    for it in range(first, first + iterations):
        if not (np.isfinite(s) and s > 1e-3 and np.all(np.isfinite(neutral))):
            return s, r, t, ident, np.inf                              # this start diverged (not a face)
        src = neutral[:NUM_MESH]
        dist, j = _nearest(s * src @ r.T + t, tv)
        gate = max(0.004, 0.02 * (1 - it / total))
        keep = dist < max(gate, np.percentile(dist, 50))
        s, r, t = umeyama(src[keep], tv[j[keep]])
        # identity: the matched targets in the model frame, minus the neutral, by ridge least squares
        y = ((tv[j] - t) @ r) / s - m.neutral[:NUM_MESH]
        rows = np.repeat(keep, 3)
        a = bmat[rows]
        ident = np.linalg.solve(a.T @ a + ridge * 1e-6 * np.eye(len(ident)), a.T @ y.reshape(-1)[rows])
        neutral = m.neutral + np.tensordot(ident, m.identity_basis, axes=1)
        rms = float(np.sqrt((dist[keep] ** 2).mean()))
    return s, r, t, ident, rms


def _whole_face_error(tv: np.ndarray, m, s: float, r: np.ndarray, t: np.ndarray, ident: np.ndarray) -> float:
    """The fitted face's error over 90 % of its 468 points (model metres; inf for a diverged start).

    The starts are told apart by it, not by the ICP's own error over its closest half: a face turned
    wrong can lay half its points on the scalp closely (3 mm) while the right one, stuck on a part in
    front of the nose, matches only 8.5 mm."""
    if not (np.isfinite(s) and s > 1e-3 and np.all(np.isfinite(ident))):
        return np.inf
    pts = s * (m.neutral + np.tensordot(ident, m.identity_basis, axes=1))[:NUM_MESH] @ r.T + t
    dist, _ = _nearest(pts, tv)
    return float(np.sqrt(np.mean(np.sort(dist)[: int(0.9 * len(dist))] ** 2))) / s


def fit_face(target_vertices: np.ndarray, iterations: int = 40, ridge: float = 10.0) -> FaceFit:
    """Fit the built-in model (similarity + identity) to a target head (see module doc).

    The head may be turned any of six ways (face along +-x, +-y, +-z): ICP starts
    from each, with the nose tip on the target's extreme vertex in that
    direction and on the middle of its most forward 2 %, runs a few iterations,
    and the start whose face lies closest to the mesh over 90 % of its points
    (:func:`_whole_face_error`) is refined; ``FaceFit.rotation`` then holds the
    orientation found.

    Args:
        target_vertices: (N, 3) target rest vertices, head frame, metres.
        iterations: ICP iterations of the refined start.
        ridge: weight of the standard-normal identity prior, in units of (1 mm)^2 per point
            (10: coefficients stay near the prior; at 1, nearest-vertex matching drifts to 12 std).

    Raises:
        FaceKeyError: ``bad_argument`` for a malformed array; ``face_not_found`` when the
            mesh is not head-sized in metres or no start fits a face within
            :data:`FIT_RMS_MAX_M`.
    """
    tv = np.asarray(target_vertices, np.float64)
    if tv.ndim != 2 or tv.shape[1] != 3 or len(tv) < 100 or not np.all(np.isfinite(tv)):
        raise FaceKeyError("bad_argument", f"target vertices must be finite (N>=100, 3), got {tv.shape}",
                           "Pass the character's rest mesh.")
    size = float(np.linalg.norm(tv.max(0) - tv.min(0)))
    if not MESH_SIZE_M[0] <= size <= MESH_SIZE_M[1]:
        raise FaceKeyError("face_not_found", f"the target mesh is {size:.3g} units across (bounding-box diagonal); "
                           f"a head in metres is {MESH_SIZE_M[0]}-{MESH_SIZE_M[1]}",
                           "Give the mesh in metres (in Blender: apply the object's scale, or set the scene unit "
                           "scale to 1), and retarget onto the head mesh, not a whole scene.")
    m = load_face_model()
    neutral = m.neutral.astype(np.float64)
    zero = np.zeros(m.num_identity)
    tries = []
    for r0 in _STARTS:
        facing = r0[:, 2]
        ahead = tv @ facing
        front = tv[ahead >= np.percentile(ahead, 98)]
        # the nose tip on the most forward vertex, and on the middle of the most forward 2 %: a small part in
        # front of the face (a glasses lens, a visor) takes the first start, not the second
        for tip in (tv[ahead.argmax()], np.median(front, axis=0)):
            tries.append(_icp(tv, m, r0, zero, 1.0, tip - r0 @ neutral[NOSE_TIP], _START_ITERATIONS, iterations,
                              0, ridge))
    s, r, t, ident, _ = min(tries, key=lambda x: _whole_face_error(tv, m, *x[:4]))
    s, r, t, ident, rms = _icp(tv, m, r, ident, s, t, iterations - _START_ITERATIONS, iterations,
                               _START_ITERATIONS, ridge)
    if not rms / s <= FIT_RMS_MAX_M:                                   # NaN (a diverged fit) fails too
        raise FaceKeyError("face_not_found", f"no face found on the target mesh: the built-in face fits it with "
                           f"{rms / s * 1000:.1f} mm RMS error at best (a head fits within {FIT_RMS_MAX_M * 1000:.0f} mm)",
                           "Retarget onto a head mesh that includes the face, in metres (in Blender: apply scale).")
    neutral = m.neutral + np.tensordot(ident, m.identity_basis, axes=1)
    pts = s * neutral @ r.T + t
    return FaceFit(identity=ident.astype(np.float32), neutral=neutral.astype(np.float32), scale=s, rotation=r,
                   translation=t, points=pts, rms_m=rms)


class FaceTransfer:
    """Precomputed closest-triangle map from the fitted face's 468 skin points to a target's vertices.

    Args:
        fit: the :class:`FaceFit` of the target.
        target_vertices: (N, 3) target rest vertices (same frame as the fit).
        inner, outer: falloff distances (target units), full motion within ``inner``, none beyond ``outer``.
    """

    def __init__(self, fit: FaceFit, target_vertices: np.ndarray, inner: float = 0.008, outer: float = 0.025):
        self.fit = fit
        tv = np.asarray(target_vertices, np.float64)
        src = fit.points[:NUM_MESH]
        tris = load_face_model().triangles
        near, _ = _nearest(tv, src)
        self.active = np.flatnonzero(near < outer + 0.01)
        d, tri, bary = closest_on_triangles(tv[self.active], src, tris)
        x = np.clip((d - inner) / (outer - inner), 0.0, 1.0)
        self.falloff = np.zeros(len(tv))
        self.falloff[self.active] = 1.0 - x * x * (3 - 2 * x)          # (N,) in [0, 1]
        self.matrix = np.zeros((len(self.active), NUM_MESH))            # (A, 468)
        rows = np.arange(len(self.active))
        for k in range(3):
            self.matrix[rows, tris[tri, k]] += bary[:, k] * self.falloff[self.active]
        self.num_target = len(tv)

    def displace(self, model_displacements: np.ndarray) -> np.ndarray:
        """(T, 478 or 468, 3) model-frame displacements (metres) -> (T, N, 3) target displacements."""
        d = np.asarray(model_displacements, np.float64)[:, :NUM_MESH]
        out = np.zeros((len(d), self.num_target, 3))
        out[:, self.active] = np.einsum("an,tnc->tac", self.matrix, self.fit.to_target(d))
        return out


def blendshape_displacements(neutral: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Plain blendshape transfer: (T, 52) weights x ``transfer_units(neutral)`` -> (T, 478, 3) metres."""
    from backend.facemodel import transfer_units
    return np.tensordot(np.asarray(weights, np.float32), transfer_units(neutral), axes=([-1], [0]))


def take_to_mesh(weights: np.ndarray, target_vertices: np.ndarray, displacements=blendshape_displacements,
                 transfer: FaceTransfer | None = None) -> np.ndarray:
    """Per-frame target geometry for a take.

    Args:
        weights: (T, 52) ARKit weights in [0, 1].
        target_vertices: (N, 3) target rest vertices, head frame, metres.
        displacements: callable(neutral (478, 3), weights (T, 52)) -> (T, 478, 3) model-frame
            displacements in metres; :func:`blendshape_displacements` or
            ``backend.retarget.serep.SerepRetarget.displacements``.
        transfer: a precomputed :class:`FaceTransfer` for this target (fitted when None).

    Returns:
        (T, N, 3) float32 positions; an all-zero take returns the rest shape exactly.
    """
    tv = np.asarray(target_vertices, np.float64)
    tr = transfer or FaceTransfer(fit_face(tv), tv)
    return (tv[None] + tr.displace(displacements(tr.fit.neutral, weights))).astype(np.float32)


def weights_at_rate(take) -> np.ndarray:
    """(K, 52) float32 weights of ``take`` sampled at its nominal rate on its own clock.

    Sample k is the take at ``k / take.fps`` seconds, k = 0 .. round(last timestamp * fps): each unit
    linearly interpolated between the valid (tracked) frames' timestamps and held before the first and
    after the last, as the shape-key bake's keys play.  A constant-rate take (timestamps k / fps) gives
    its own frames back; a take without a valid frame is sampled from the values it holds.  Frames
    closer together than 1 / fps (a 60-rows-a-second take saying 30 fps) are sampled, not all kept.

    Raises:
        FaceKeyError: ``take_invalid`` when the timestamps span far more time than the frames fill
        (over :data:`MAX_SAMPLES_PER_FRAME` samples per frame beyond a minute): the cache would be huge.
    """
    w = np.asarray(take.weights, np.float64)
    last = float(take.timestamps[-1])
    count = max(1, int(round(last * take.fps)) + 1) if np.isfinite(last) and last < 1e9 else -1
    if not 0 < count <= MAX_SAMPLES_PER_FRAME * len(w) + 60 * take.fps:
        raise FaceKeyError("take_invalid", f"The take's {len(w)} frames span {last:.6g} s: a cache at "
                           f"{take.fps:g} fps would hold {count if count > 0 else 'too many'} samples.",
                           "Trim the take to the part with the face, or fix its timestamps.")
    times = np.arange(count) / take.fps
    keep = take.valid if take.valid.any() else np.ones(len(w), bool)
    ts, kept = take.timestamps[keep], w[keep]
    return np.stack([np.interp(times, ts, kept[:, u]) for u in range(w.shape[1])], axis=1).astype(np.float32)
