"""Rebuild the solved face of a Take and project it back into its footage."""
from __future__ import annotations

import numpy as np

from .estimators.camera import project
from .facemodel import FaceModel
from .protocol.rotations import quat_to_matrix
from .protocol.take import Take

__all__ = ["take_vertices", "project_take", "face_edges"]


def take_vertices(take: Take, model: FaceModel) -> np.ndarray:
    """(T, N, 3) camera-space vertices (metres) of the solved face in every frame."""
    identity = np.asarray(take.header.get("identity") or np.zeros(model.num_identity), np.float32)
    verts = model.vertices(take.weights, identity)                         # (T, N, 3) head frame
    rot = quat_to_matrix(take.head_rotation)                               # (T, 3, 3) head -> camera
    return np.einsum("tij,tnj->tni", rot, verts) + take.head_translation[:, None, :]


def project_take(take: Take, model: FaceModel) -> np.ndarray:
    """(T, N, 2) pixel positions of the solved face (NaN on invalid frames), using the
    take's ``focal_px`` and ``image_size`` header (the solver's pinhole camera)."""
    size = tuple(take.header["image_size"])
    px = project(take_vertices(take, model), float(take.header["focal_px"]), size)[..., :2]
    px[~take.valid] = np.nan
    return px


def face_edges(model: FaceModel) -> np.ndarray:
    """(E, 2) unique undirected vertex pairs of the model's triangles."""
    tri = np.asarray(model.triangles)
    e = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
    return np.unique(np.sort(e, axis=1), axis=0)
