"""Second landmark source: face-alignment's FAN network (iBUG-68 points), offline.

face-alignment (Bulat & Tzimiropoulos) downloads its detector and FAN weights
when its ``FaceAlignment`` object is built, which fails offline.  FaceKey uses
only its network definition and heat-map decoding, with a weights file the
user supplies, and finds faces with MediaPipe (the default tracker):

1. the default 478-point track gives each valid frame's face box;
2. the box becomes face-alignment's (centre, scale) crop
   (centre raised by 0.12 box heights, scale = (w + h) / 195, 256 px crop);
3. FAN(4) predicts 68 heat maps (64x64); their peaks, refined by a quarter
   pixel toward the larger neighbour, map back to image pixels.

Weights: face-alignment's TorchScript archive (``2DFAN4-*.zip``), a PyTorch
state dict (``.pth``/``.pt``) or a ``.safetensors`` file of ``FAN(4)``;
names and shapes are checked before use.  Path: the ``weights`` argument or
``$FACEKEY_FAN_WEIGHTS``.

Install (kept out of the default extras because face-alignment's declared
requirements add a second OpenCV variant next to MediaPipe's):
``pip install --no-deps face-alignment==1.5.0 && pip install scikit-image numba tqdm``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from backend.protocol.errors import FaceKeyError
from backend.protocol.messages import Progress

from .select import face_box
from .track import FaceTrack

__all__ = ["FAN_WEIGHTS_ENV", "FanLandmarker", "fan_track", "fan_weights_path"]

FAN_WEIGHTS_ENV = "FACEKEY_FAN_WEIGHTS"
_INSTALL = "pip install --no-deps face-alignment==1.5.0 && pip install scikit-image numba tqdm"
_REFERENCE_SCALE = 195.0     # face-alignment's box-size -> scale divisor
_CENTER_Y_OFFSET = 0.12      # face-alignment raises the crop centre by this many box heights


def _face_alignment():
    try:
        from face_alignment import models, utils
    except ImportError as e:
        raise FaceKeyError("bad_argument", f"the FAN landmark source needs the face-alignment package ({e})",
                           f"Install it: {_INSTALL}; or use the default MediaPipe landmarks.") from e
    return models, utils


def fan_weights_path(weights: Optional[str | os.PathLike] = None) -> Path:
    """The FAN weights file to use (argument, else ``$FACEKEY_FAN_WEIGHTS``); must exist."""
    path = weights or os.environ.get(FAN_WEIGHTS_ENV)
    if not path:
        raise FaceKeyError("weights_missing", "no FAN weights file was given",
                           f"Pass the path of face-alignment's 2DFAN4 weights (or set ${FAN_WEIGHTS_ENV}); "
                           "FaceKey never downloads weights.")
    path = Path(path)
    if not path.is_file():
        raise FaceKeyError("weights_missing", f"FAN weights file not found: {path}",
                           f"Put face-alignment's 2DFAN4 weights there or point ${FAN_WEIGHTS_ENV} at them.")
    return path


def _load_network(path: Path, device: str):
    """FAN(4) with weights from ``path`` (TorchScript archive, state dict or safetensors), eval mode."""
    import torch

    models, _ = _face_alignment()
    if path.suffix == ".zip":
        try:
            return torch.jit.load(str(path), map_location=device).eval()
        except RuntimeError as e:
            raise FaceKeyError("weights_invalid", f"{path} is not a TorchScript FAN archive ({e})",
                               "Use face-alignment's 2DFAN4 .zip, or a FAN(4) state dict (.pth/.safetensors).") from e
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            state = load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as e:
            raise FaceKeyError("weights_invalid", f"{path} is not a readable safetensors file ({e})",
                               "Use a FAN(4) state dict (.pth/.safetensors) or face-alignment's 2DFAN4 .zip.") from e
    else:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except (RuntimeError, ValueError, OSError) as e:
            raise FaceKeyError("weights_invalid", f"{path} is not a PyTorch state dict ({e})",
                               "Use a FAN(4) state dict (.pth/.safetensors) or face-alignment's 2DFAN4 .zip.") from e
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    net = models.FAN(4)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        raise FaceKeyError("weights_invalid", f"{path} does not match FAN(4): {len(missing)} missing, "
                           f"{len(unexpected)} unexpected, {len(wrong)} wrongly shaped tensors "
                           f"(first: {(missing + unexpected + wrong)[:3]})",
                           "Use weights of face-alignment's 2D FAN with 4 hourglass modules (2DFAN4).")
    net.load_state_dict(state)
    return net.to(device).eval()


class FanLandmarker:
    """FAN(4) on face crops: ``landmarks(image, box) -> (68, 3)`` pixels (z = 0) and per-point scores.

    Args:
        weights: weights file (see module docstring); None reads ``$FACEKEY_FAN_WEIGHTS``.
        device: "cpu" or "cuda".
    """

    def __init__(self, weights: Optional[str | os.PathLike] = None, device: str = "cpu"):
        self.path = fan_weights_path(weights)
        self.device = device
        self.net = _load_network(self.path, device)
        _, self._utils = _face_alignment()

    def landmarks(self, image: np.ndarray, box: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, 3) uint8 RGB image and (x0, y0, x1, y1) face box in pixels ->
        ((68, 3) float32 pixel landmarks with z = 0, (68,) float32 heat-map peak scores)."""
        import torch

        x0, y0, x1, y1 = box
        centre = np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0 - (y1 - y0) * _CENTER_Y_OFFSET])
        scale = (x1 - x0 + y1 - y0) / _REFERENCE_SCALE
        crop = self._utils.crop(image, centre, scale)                         # (256, 256, 3) uint8
        inp = torch.from_numpy(crop.transpose(2, 0, 1).astype(np.float32) / 255.0)[None].to(self.device)
        with torch.inference_mode():
            out = self.net(inp)
        heat = (out[-1] if isinstance(out, (list, tuple)) else out).float().cpu().numpy()   # (1, 68, 64, 64)
        _, pts_img, scores = self._utils.get_preds_fromhm(heat, centre, scale)
        pts = np.zeros((68, 3), np.float32)
        pts[:, :2] = np.asarray(pts_img, np.float32).reshape(68, 2)
        return pts, np.asarray(scores, np.float32).reshape(68)


def fan_track(footage, track478: FaceTrack, landmarker: FanLandmarker, *,
              progress: Optional[Callable[[Progress], None]] = None, cancel=None) -> FaceTrack:
    """Re-detect landmarks with FAN on the faces of a 478-point track.

    Args:
        footage: the same footage the track came from (a fresh ``open_footage``;
            frames are decoded again, one at a time).
        track478: the MediaPipe track (face boxes and validity per frame).
        landmarker: a loaded :class:`FanLandmarker`.

    Returns:
        FaceTrack with scheme "ibug68": (T, 68, 3) pixels (NaN where invalid),
        confidence = mean heat-map peak clipped to [0, 1].
    """
    t = track478.num_frames
    lm = np.full((t, 68, 3), np.nan, np.float32)
    conf = np.zeros(t, np.float32)
    for frame in footage.frames():
        i = frame.index
        if i >= t:
            break
        if cancel is not None and cancel.is_set():
            raise FaceKeyError("cancelled", "FAN landmarking was cancelled", "Start the capture again to redo it.")
        if not track478.valid[i]:
            continue
        scale = frame.image.shape[1] / track478.image_size[0]               # frames may be downscaled
        box = tuple(v * scale for v in face_box(track478.landmarks[i]))
        pts, scores = landmarker.landmarks(frame.image, box)
        pts[:, :2] /= scale
        lm[i] = pts
        conf[i] = float(np.clip(scores.mean(), 0.0, 1.0))
        if progress is not None:
            progress(Progress(i + 1, t, "FAN landmarks"))
    info = dict(track478.info, landmark_source="fan", fan_weights=str(landmarker.path))
    return FaceTrack(landmarks=lm, valid=track478.valid.copy(), confidence=conf,
                     timestamps=track478.timestamps.copy(), fps=track478.fps, image_size=track478.image_size,
                     scheme="ibug68", source=track478.source, source_sha256=track478.source_sha256,
                     focal_px=track478.focal_px, info=info,
                     # a hand over the face covers the same places whichever tracker found the points
                     occluded=track478.to_ibug68().occluded)
