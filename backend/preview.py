"""Previews a person can look at: a video with landmarks and the rebuilt face
drawn over the footage, and a plot of the main curves."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Optional

import numpy as np

from .protocol.arkit import ARKIT_NAMES
from .protocol.rotations import quat_to_ypr
from .protocol.take import Take

__all__ = ["plot_curves", "render_preview", "main_units"]

#: Time base of the preview video (the MPEG 90 kHz clock): frame times are kept to 11 microseconds.
PTS_PER_SECOND = 90000


def main_units(take: Take, count: int = 8) -> list[int]:
    """Indices of the ``count`` most active units: highest 95th-percentile weight over valid
    frames (a unit held high all clip long is shown, not only the ones that vary)."""
    w = take.weights[take.valid] if take.valid.any() else take.weights
    return [int(i) for i in np.argsort(-np.percentile(w, 95, axis=0), kind="stable")[:count]]


def plot_curves(take: Take, out_png: str | Path, count: int = 8) -> Path:
    """Plot the ``count`` most active units and head yaw/pitch/roll (degrees) against time."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = take.timestamps
    fig, (ax_w, ax_h) = plt.subplots(2, 1, figsize=(11, 7), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    for i in main_units(take, count):
        w = np.where(take.valid, take.weights[:, i], np.nan)
        ax_w.plot(t, w, label=ARKIT_NAMES[i], lw=1.5)
    ax_w.set_ylim(-0.02, 1.02)
    ax_w.set_ylabel("weight")
    ax_w.legend(loc="upper right", ncol=2, fontsize=8)
    ax_w.set_title(f"FaceKey take: {Path(str(take.header.get('source', ''))).name}  ({take.num_frames} frames, "
                   f"{int(take.valid.sum())} valid)")
    ypr = np.degrees(quat_to_ypr(take.head_rotation))
    for k, name in enumerate(("yaw", "pitch", "roll")):
        ax_h.plot(t, np.where(take.valid, ypr[:, k], np.nan), label=f"head {name}")
    ax_h.set_ylabel("degrees")
    ax_h.set_xlabel("time (s)")
    ax_h.legend(loc="upper right", fontsize=8)
    for ax in (ax_w, ax_h):
        ax.grid(alpha=0.3)
        invalid = ~take.valid
        if invalid.any():
            ax.fill_between(t, 0, 1, where=invalid, transform=ax.get_xaxis_transform(), color="grey", alpha=0.2)
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def render_preview(footage_path: str | Path, take: Take, out_mp4: str | Path, *,
                   rebuilt_2d: Optional[np.ndarray] = None, edges: Optional[np.ndarray] = None,
                   max_side: Optional[int] = None) -> Path:
    """Write an H.264 preview: tracked landmarks (green dots) and the rebuilt face
    (orange wireframe) over the footage, with the top units as bars.  Each frame is
    shown at its take timestamp, so footage that dropped or repeated frames plays in
    step with the clip and the bake.

    Args:
        footage_path: the clip the take was captured from.
        take: the Take (its ``landmarks`` (T, L, 3) pixels are drawn when present).
        out_mp4: output path.
        rebuilt_2d: optional (T, N, 2) float pixels of the solved face projected
            into each frame (NaN on invalid frames), full-resolution pixels.
        edges: (E, 2) int vertex pairs of the wireframe for ``rebuilt_2d``.
        max_side: downscale the preview so its longer side is at most this; the
            take's full-resolution landmarks are scaled to match.
    """
    import av
    import cv2

    from .footage import open_footage

    footage = open_footage(footage_path, max_side=max_side)
    scale = footage.info.scale                      # preview pixels per full-resolution pixel
    out_mp4 = Path(out_mp4)
    top = main_units(take, 6)
    container = av.open(str(out_mp4), "w")
    last_pts = -1
    try:
        stream = None
        for frame in footage.frames():
            i = frame.index
            if i >= take.num_frames:
                break
            img = np.ascontiguousarray(frame.image)
            if stream is None:
                h, w = img.shape[:2]
                stream = container.add_stream("libx264", rate=max(1, round(take.fps)))
                stream.width, stream.height = w - w % 2, h - h % 2
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "23"}
                stream.codec_context.time_base = stream.time_base = Fraction(1, PTS_PER_SECOND)
            if take.valid[i]:
                if rebuilt_2d is not None and edges is not None:
                    p = rebuilt_2d[i] * scale
                    ok = np.isfinite(p).all(axis=1)
                    e = edges[ok[edges[:, 0]] & ok[edges[:, 1]]]
                    lines = np.round(p[e] * 4).astype(np.int32)       # 2-bit subpixel
                    cv2.polylines(img, list(lines), False, (255, 150, 40), 1, cv2.LINE_AA, shift=2)
                if take.landmarks is not None:
                    for x, y in take.landmarks[i, :, :2] * scale:
                        if np.isfinite(x) and np.isfinite(y):
                            cv2.circle(img, (int(round(x)), int(round(y))), 1, (60, 255, 60), -1, cv2.LINE_AA)
            else:
                cv2.putText(img, "no face", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 60, 60), 2, cv2.LINE_AA)
            for k, u in enumerate(top):
                y0 = 12 + 16 * k
                v = float(take.weights[i, u])
                cv2.rectangle(img, (8, y0), (8 + int(100 * v), y0 + 10), (255, 220, 0), -1)
                cv2.putText(img, ARKIT_NAMES[u], (114, y0 + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1,
                            cv2.LINE_AA)
            vf = av.VideoFrame.from_ndarray(img[: stream.height, : stream.width], format="rgb24")
            # strictly increasing: the reader nudges a repeated frame time by 1 us, below one tick
            last_pts = max(round(float(take.timestamps[i]) * PTS_PER_SECOND), last_pts + 1)
            vf.pts, vf.time_base = last_pts, stream.time_base
            for packet in stream.encode(vf):
                container.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    finally:
        container.close()
    return out_mp4
