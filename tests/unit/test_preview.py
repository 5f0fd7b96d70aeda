"""The preview video a person watches beside the footage and the bake."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av")
pytest.importorskip("cv2")

from test_footage import make_clip  # noqa: E402

from backend.footage import open_footage  # noqa: E402
from backend.preview import render_preview  # noqa: E402
from backend.protocol.take import Take  # noqa: E402


def test_preview_frames_keep_the_footage_times(tmp_path):
    """A phone clip that dropped frames (30 fps nominal, gaps of 0.2-0.4 s): each preview frame is shown
    at its take time, so the preview stays in step with the clip and the bake (it played every frame
    1/30 s after the last, 0.6 s early by the end of this one-second clip)."""
    pts = [0, 33, 66, 200, 233, 500, 533, 566, 600, 1000]
    clip = make_clip(tmp_path / "phone.mp4", n=10, pts=pts, time_base=Fraction(1, 1000))
    times = np.array([f.time for f in open_footage(clip)])
    take = Take.empty(10, 30.0, timestamps=times, source=clip)
    out = render_preview(clip, take, tmp_path / "preview.mp4")
    with av.open(str(out)) as c:
        shown = np.array([f.time for f in c.decode(video=0)])
    assert len(shown) == 10
    np.testing.assert_allclose(shown - shown[0], times - times[0], atol=2e-3)


def test_preview_of_footage_with_a_repeated_frame_time(tmp_path):
    """The reader moves a frame whose time repeats 1 us later, below one tick of the preview's clock: two
    frames got the same pts and the muxer refused the file, after the whole capture."""
    pts = [0, 33, 66, 100, 100, 133, 166]
    clip = make_clip(tmp_path / "dup.mkv", n=7, pts=pts, time_base=Fraction(1, 1000))
    times = np.array([f.time for f in open_footage(clip)])
    take = Take.empty(7, 30.0, timestamps=times, source=clip)
    with av.open(str(render_preview(clip, take, tmp_path / "preview.mp4"))) as c:
        shown = np.array([f.time for f in c.decode(video=0)])
    assert len(shown) == 7 and np.all(np.diff(shown) > 0)
