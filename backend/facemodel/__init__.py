"""The built-in face model: MediaPipe topology, ARKit-52 units, identity basis."""
from .canonical import NUM_VERTICES
from .model import FaceModel, load_face_model
from .transfer import transfer_units

__all__ = ["FaceModel", "load_face_model", "transfer_units", "NUM_VERTICES"]
