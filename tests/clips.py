"""Small video clips made inside tests (test material stays in tmp dirs)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

import numpy as np

DEMO_CLIP = Path(__file__).resolve().parents[1] / "backend" / "assets" / "demo" / "pexels_wolfgang_langer_emotions.mp4"


def write_video(path: Path, frames: Iterable[np.ndarray], fps: int = 30) -> Path:
    """Encode (H, W, 3) uint8 RGB frames (even sizes) as H.264 with PyAV."""
    import av
    frames = list(frames)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for img in frames:
            for pkt in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in stream.encode():
            out.mux(pkt)
    return Path(path)


def cut_clip(dst: Path, src: Path = DEMO_CLIP, *, frames: Optional[int] = None, seconds: Optional[float] = None,
             size: Optional[tuple[int, int]] = None) -> Path:
    """The first ``frames`` frames (or ``seconds``) of ``src``, optionally resized to
    ``size`` = (width, height), re-encoded to ``dst`` at the source's rounded rate."""
    import av
    import cv2
    out, fps = [], 30
    with av.open(str(src)) as inp:
        stream = inp.streams.video[0]
        fps = int(round(float(stream.average_rate or 30)))
        for i, frame in enumerate(inp.decode(stream)):
            if (frames is not None and i >= frames) or (seconds is not None and frame.time >= seconds):
                break
            img = frame.to_ndarray(format="rgb24")
            out.append(cv2.resize(img, size, interpolation=cv2.INTER_AREA) if size else img)
    return write_video(dst, out, fps)
