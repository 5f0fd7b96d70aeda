"""Actor identity basis: plausible variation of the neutral face.

Each component is a (N, 3) displacement field in metres scaled to one
standard deviation of adult variation, so the prior on the coefficients is
standard normal (``identity ~ N(0, I)``).  The first components are named
anatomical variations; the rest are smooth random low-frequency fields
(fixed seed; symmetric and, a few, asymmetric) that cover what the named
ones miss: *detail* components (:func:`is_detail`).  Synthetic actors, SEREP
training actors and the fit of a character's head use every component; the
landmark solver fits the named ones only (:func:`backend.estimators.fit.Fitter`):
from 2D landmarks the detail fields are not told apart from expression and
tracker error, and on real clips they only made the solved actor less stable.
"""
from __future__ import annotations

import numpy as np

from .canonical import LEFT_EYE, RIGHT_EYE, NUM_MESH
from .regions import LIPS, lid_gaps, LOWER_INNER, LOWER_OUTER, UPPER_INNER, UPPER_OUTER, rbf_field, smoothstep

__all__ = ["build_identity_basis", "is_detail", "NUM_RANDOM"]

MM = 1e-3
NUM_RANDOM = 16
_SEED = 20261124


#: Name prefix of the detail components.
DETAIL_PREFIX = "random_"


def is_detail(name: str) -> bool:
    """True for a detail component (a smooth random field), False for a named anatomical one."""
    return name.startswith(DETAIL_PREFIX)


def _bump(v, centre, sigma):
    return np.exp(-((v - centre) ** 2).sum(1) / (2 * sigma * sigma))[:, None]


def _without_rigid_motion(basis: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(K, N, 3) displacement fields minus their least-squares rigid part over the 468 mesh vertices.

    A field that translates or turns the face as a whole is not a face shape:
    the head pose explains it just as well, so the solver could move freely
    along it (identity and pose would trade it between the halves of a clip).
    The 6 infinitesimal rigid motions of ``v`` (N, 3) metres (3 translations,
    3 rotations about the mesh centroid) are fitted to each field over the mesh
    vertices and subtracted from every vertex, irises included.
    """
    c = v[:NUM_MESH].mean(0)
    r = v - c
    rigid = np.zeros((6, len(v), 3))
    for a in range(3):
        rigid[a, :, a] = 1.0
        axis = np.zeros(3)
        axis[a] = 1.0
        rigid[3 + a] = np.cross(axis, r)
    m = rigid[:, :NUM_MESH].reshape(6, -1).T                      # (3 * 468, 6)
    coef, *_ = np.linalg.lstsq(m, basis[:, :NUM_MESH].reshape(len(basis), -1).T, rcond=None)   # (6, K)
    return basis - np.einsum("rk,rnd->knd", coef, rigid)


def build_identity_basis(v: np.ndarray, mirror: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Return ``(basis (K, N, 3) float64 metres, names (K,))`` for neutral ``v`` (N, 3)."""
    c = v[:NUM_MESH].mean(0)
    x, y, z = (v - c).T
    nose_tip, nose_base = v[4], v[2]
    brow_y = v[[105, 334]][:, 1].mean()
    eye_l = v[[LEFT_EYE["outer"], LEFT_EYE["inner"]]].mean(0)
    eye_r = v[[RIGHT_EYE["outer"], RIGHT_EYE["inner"]]].mean(0)
    zero = np.zeros_like(x)
    comps: dict[str, np.ndarray] = {
        "width": np.stack([x * 0.04, zero, zero], 1),
        "height": np.stack([zero, y * 0.04, zero], 1),
        "depth": np.stack([zero, zero, z * 0.05], 1),
        "face_length": np.stack([zero, np.minimum(v[:, 1] - nose_base[1], 0) * 0.07, zero], 1),
        "forehead_height": np.stack([zero, np.maximum(v[:, 1] - brow_y, 0) * 0.08, zero], 1),
        "nose_size": (v - nose_base) * 0.12 * _bump(v, (nose_tip + v[168]) / 2, 0.015),
        "nose_protrusion": np.array([0, 0, 3 * MM]) * _bump(v, nose_tip, 0.012),
        "eye_spacing": (np.array([2.5 * MM, 0, 0]) * _bump(v, eye_l, 0.013)
                        - np.array([2.5 * MM, 0, 0]) * _bump(v, eye_r, 0.013)),
        "eye_height": np.array([0, 2.0 * MM, 0]) * (_bump(v, eye_l, 0.013) + _bump(v, eye_r, 0.013)),
        "jaw_width": np.stack([x * 0.07 * smoothstep(nose_base[1] - v[:, 1], 0.0, 0.05), zero, zero], 1),
        "chin_protrusion": np.array([0, -1.0 * MM, 3.5 * MM]) * _bump(v, v[152], 0.02),
        "mouth_width": np.stack([np.sign(x) * 2.5 * MM, zero, zero], 1)
        * (_bump(v, v[291], 0.008) + _bump(v, v[61], 0.008)),
        "cheek_fullness": np.stack([np.sign(x) * 3 * MM, zero, np.full_like(x, 1.5 * MM)], 1)
        * (_bump(v, v[425], 0.018) + _bump(v, v[205], 0.018)),
        "brow_height": np.array([0, 3 * MM, 0]) * (_bump(v, v[334], 0.015) + _bump(v, v[105], 0.015)),
    }
    lips = np.zeros_like(v)
    lips[list(UPPER_OUTER[1:-1])] = [0, 1.5 * MM, 0.5 * MM]
    lips[list(LOWER_OUTER[1:-1])] = [0, -1.5 * MM, 0.5 * MM]
    comps["lip_thickness"] = rbf_field(v, LIPS, lips[list(LIPS)], 0.003)
    # The canonical mesh rests with a 5.5 mm inner-lip gap; MediaPipe puts the
    # inner lips together on a closed mouth.  One std closes half the gap.
    gap = np.zeros_like(v)
    gap[list(UPPER_INNER[1:-1])] = [0, -1.4 * MM, 0]
    gap[list(LOWER_INNER[1:-1])] = [0, 1.4 * MM, 0]
    comps["inner_lip_gap"] = rbf_field(v, LIPS, gap[list(LIPS)], 0.002)
    # Resting lid aperture varies between actors (and MediaPipe's lids sit
    # differently on different eyes): without it a constant eyeWide / eyeSquint
    # explains the actor's open or narrow eyes.  One std opens each upper lid
    # 1.2 mm and lowers each lower lid 0.4 mm, both eyes alike.
    gu_l, gl_l, prof_l = lid_gaps(v, LEFT_EYE)
    gu_r, gl_r, prof_r = lid_gaps(v, RIGHT_EYE)
    lids = np.zeros_like(v)
    for eye, pu, pl in ((LEFT_EYE, prof_l[0], prof_l[1]), (RIGHT_EYE, prof_r[0], prof_r[1])):
        lids[list(eye["upper"])] = np.outer(pu, [0, 1.2 * MM, 0])
        lids[list(eye["lower"])] = np.outer(pl, [0, -0.4 * MM, 0])
    lid_ids = [i for eye in (LEFT_EYE, RIGHT_EYE) for k in ("upper", "lower") for i in eye[k]]
    lid_ids += [eye[k] for eye in (LEFT_EYE, RIGHT_EYE) for k in ("outer", "inner")]
    comps["lid_aperture"] = rbf_field(v, lid_ids, lids[lid_ids], 0.0025)
    rng = np.random.default_rng(_SEED)
    mesh = v[:NUM_MESH]
    for k in range(NUM_RANDOM):
        centres = rng.choice(NUM_MESH, 6, replace=False)
        disp = rng.normal(0.0, 2.0 * MM, (6, 3))
        field = np.zeros_like(v)
        for ci, d in zip(centres, disp):
            field += d * _bump(v, mesh[ci], 0.025)
        if k < 12:  # symmetric fields: average with the mirror image
            field = 0.5 * (field + field[mirror] * np.array([-1.0, 1.0, 1.0]))
        comps[f"{DETAIL_PREFIX}{k:02d}"] = field
    names = tuple(comps)
    basis = np.stack([comps[n] for n in names])
    # iris points follow their eye's centre rigidly (an iris does not stretch)
    for iris in ((468, 469, 470, 471, 472), (473, 474, 475, 476, 477)):
        basis[:, list(iris)] = basis[:, [iris[0]]]
    basis = _without_rigid_motion(basis, v)
    # Where the iris rests between the lids when looking at the camera (a
    # constant gaze offset is the actor's, not an eyeLook expression): both
    # irises 1 mm up per std, the lids still.
    iris_height = np.zeros_like(v)
    iris_height[NUM_MESH:] = [0, 1.0 * MM, 0]
    basis = np.concatenate([basis, iris_height[None]])
    names = names + ("iris_height",)
    return basis, names
