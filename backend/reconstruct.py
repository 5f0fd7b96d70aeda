"""Rebuild the solved face of a Take and project it back into its footage."""
from __future__ import annotations

import numpy as np

from .estimators.camera import project
from .facemodel import FaceModel
from .protocol.rotations import quat_to_matrix
from .protocol.take import Take
from .tracking.ibug68 import ibug68_vertices

__all__ = ["actor_neutral", "head_vertices", "take_vertices", "project_take", "project_take_ibug68", "face_edges"]


def _rest_offset(take: Take, model: FaceModel) -> np.ndarray:
    """(N, 3) float32 metres: the header's ``rest_offset`` (the solver's rest-face calibration) or zeros."""
    offset = take.header.get("rest_offset")
    if offset is None:
        return np.zeros((model.num_vertices, 3), np.float32)
    return np.asarray(offset, np.float32).reshape(model.num_vertices, 3)


def head_vertices(take: Take, model: FaceModel) -> np.ndarray:
    """(T, N, 3) float32 metres, head frame: the solved face of every frame (identity, weights, rest face)."""
    identity = np.asarray(take.header.get("identity") or np.zeros(model.num_identity), np.float32)
    return model.vertices(take.weights, identity) + _rest_offset(take, model)   # (T, N, 3) head frame


def actor_neutral(take: Take, model: FaceModel) -> np.ndarray:
    """(N, 3) float32 metres, head frame: the take's actor at rest (identity, plus the rest face when
    the take was calibrated on a rest frame)."""
    identity = np.asarray(take.header.get("identity") or np.zeros(model.num_identity), np.float32)
    return model.vertices(np.zeros(len(model.unit_names), np.float32), identity) + _rest_offset(take, model)


def _to_camera(take: Take, points: np.ndarray) -> np.ndarray:
    rot = quat_to_matrix(take.head_rotation)                               # (T, 3, 3) head -> camera
    return np.einsum("tij,tnj->tni", rot, points) + take.head_translation[:, None, :]


def _to_pixels(take: Take, cam: np.ndarray) -> np.ndarray:
    px = project(cam, float(take.header["focal_px"]), tuple(take.header["image_size"]))[..., :2]
    px[~take.valid] = np.nan
    return px


def take_vertices(take: Take, model: FaceModel) -> np.ndarray:
    """(T, N, 3) camera-space vertices (metres) of the solved face in every frame."""
    return _to_camera(take, head_vertices(take, model))


def project_take(take: Take, model: FaceModel) -> np.ndarray:
    """(T, N, 2) pixel positions of the solved face (NaN on invalid frames), using the
    take's ``focal_px`` and ``image_size`` header (the solver's pinhole camera)."""
    return _to_pixels(take, take_vertices(take, model))


def project_take_ibug68(take: Take, model: FaceModel) -> np.ndarray:
    """(T, 68, 2) pixel positions of the solved face's iBUG 68 points (NaN on invalid frames),
    jaw on the mandible line (:func:`backend.tracking.ibug68.ibug68_vertices`)."""
    return _to_pixels(take, _to_camera(take, ibug68_vertices(head_vertices(take, model))))


def face_edges(model: FaceModel) -> np.ndarray:
    """(E, 2) unique undirected vertex pairs of the model's triangles."""
    tri = np.asarray(model.triangles)
    e = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
    return np.unique(np.sort(e, axis=1), axis=0)
