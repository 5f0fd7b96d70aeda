"""Epic Live Link Face CSV files <-> Takes (numpy + standard library; copied into the add-on).

Layout (one header line, then one row per frame)::

    Timecode,BlendShapeCount,<52 blendshapes, LIVELINK_CSV_BLENDSHAPES order>,
    HeadYaw,HeadPitch,HeadRoll,LeftEyeYaw,LeftEyePitch,LeftEyeRoll,
    RightEyeYaw,RightEyePitch,RightEyeRoll

* ``Timecode`` is ``HH:MM:SS:FF.fff``: ``FF`` counts frames at the recording
  rate (e.g. 0..59 at 60 fps) and ``.fff`` is the fraction of a frame.
* ``BlendShapeCount`` is the number of value columns (61 = 52 + 9).
* Values are printed with 10 decimals; blendshapes lie in [0, 1]; angles are
  radians.

Sign conventions (measured on a real recording by correlating eye angles with
the ``EyeLook*`` blendshapes): Live Link eye yaw > 0 turns toward the
subject's RIGHT and eye pitch > 0 looks DOWN, the opposite of the Take
conventions (see ``take``), so yaw and pitch are negated on import and export.
Head yaw and pitch are assumed to follow the same convention as the eyes and
are negated too; head roll is copied unchanged.

Reading keeps the original timecode strings, header line, column order,
``BlendShapeCount`` and the raw head/eye-roll angles in
``take.header["livelink"]`` so that writing an unedited imported Take
reproduces the file byte for byte.
"""
from __future__ import annotations

import csv
import io
import math
import os
import re

import numpy as np

from .arkit import INDEX, LIVELINK_CSV_BLENDSHAPES, NUM_UNITS
from .errors import FaceKeyError
from .npzfile import atomic_write
from .rotations import quat_to_ypr, ypr_to_quat
from .take import Take

__all__ = ["read_livelink_csv", "write_livelink_csv", "ANGLE_COLUMNS", "STANDARD_COLUMNS",
           "parse_timecode", "format_timecode", "timecode_rate"]

ANGLE_COLUMNS: tuple[str, ...] = (
    "HeadYaw", "HeadPitch", "HeadRoll",
    "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)
STANDARD_COLUMNS: tuple[str, ...] = ("Timecode", "BlendShapeCount") + LIVELINK_CSV_BLENDSHAPES + ANGLE_COLUMNS

#: Recording rates Live Link Face (and common timecode) use.
_RATES = (24, 25, 30, 48, 50, 60, 90, 100, 120, 240)
_TIMECODE = re.compile(r"^(\d+):(\d{2}):(\d{2})[:;](\d+)(?:\.(\d+))?$")
_HINT_CSV = "Export the CSV again from Live Link Face, or fix the named row/column in a text editor."
#: Raw angles are reused on export only while the Take still agrees with them (radians).
_RAW_TOLERANCE = 1e-5


def _csv_error(path: str, where: str, what: str) -> FaceKeyError:
    return FaceKeyError("csv_invalid", f"{os.path.basename(path)}: {where}: {what}.", _HINT_CSV)


def parse_timecode(text: str) -> tuple[int, int, int, int, float]:
    """``"00:32:09:07.867"`` -> (hours, minutes, seconds, frame, fraction of a frame)."""
    m = _TIMECODE.match(text.strip())
    if m is None:
        raise ValueError(f"timecode {text!r} is not HH:MM:SS:FF.fff")
    frac = float("0." + m.group(5)) if m.group(5) else 0.0
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)), frac


def format_timecode(seconds: float, fps: int) -> str:
    """Seconds from 00:00:00:00 -> ``HH:MM:SS:FF.fff`` at integer rate ``fps``."""
    total = round(seconds * fps * 1000)  # thousandths of a frame
    frames_1000 = total % (fps * 1000)
    whole = total // (fps * 1000)
    h, rem = divmod(whole, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}:{frames_1000 // 1000:02d}.{frames_1000 % 1000:03d}"


def timecode_rate(fps: float) -> int:
    """The timecode rate a take of ``fps`` frames per second is written at: the smallest standard rate at
    least ``fps`` (15 -> 24, 29.97 -> 30), so that :func:`_infer_rate` reads the same rate back from any
    take of a second or more; the timecodes' fractions of a frame keep every time exact."""
    return next((r for r in _RATES if r >= fps - 1e-6), max(1, math.ceil(fps)))


def _infer_rate(frame_fields: list[int]) -> int:
    """Smallest standard rate above every frame number seen (0..rate-1).

    Exact whenever the clip crosses a second boundary (it then shows frame
    number rate-1); a clip shorter than one second is ambiguous and gets the
    smallest standard rate that fits.
    """
    top = max(frame_fields)
    for rate in _RATES:
        if top < rate:
            return rate
    return top + 1


def read_livelink_csv(path: str | os.PathLike) -> Take:
    """Read a Live Link Face CSV into a Take.

    Returns a Take with ``weights (T, 52)`` in ARKit order, ``head_rotation
    (T, 4)`` from HeadYaw/Pitch/Roll, ``eye_gaze (T, 4)`` radians, all frames
    valid, ``timestamps (T,)`` seconds from the first row, ``fps`` = the
    timecode rate.  Blendshape columns are found by name, case-insensitively,
    in any order.  Raises ``file_missing`` or ``csv_invalid`` (naming the row
    and column).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FaceKeyError("file_missing", f"CSV file not found: {path}", "Check the path to the Live Link Face CSV.")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _csv_error(path, "file", f"is not UTF-8 text ({e})") from e
    newline = "\r\n" if "\r\n" in text else "\n"
    rows = list(csv.reader(io.StringIO(text, newline="")))
    while rows and not any(cell.strip() for cell in rows[-1]):
        rows.pop()
    if len(rows) < 2:
        raise _csv_error(path, "file", "has no data rows")
    columns = [c.strip() for c in rows[0]]
    lower = {c.lower(): i for i, c in enumerate(columns)}
    if len(lower) != len(columns):
        raise _csv_error(path, "header", "repeats a column name")
    needed = ("Timecode",) + LIVELINK_CSV_BLENDSHAPES
    missing = [c for c in needed if c.lower() not in lower]
    if missing:
        raise _csv_error(path, "header", f"lacks column(s) {', '.join(missing)}")

    num_rows = len(rows) - 1
    values = np.zeros((num_rows, len(columns)), np.float64)
    timecodes: list[str] = []
    parsed_tc = []
    tc_col = lower["timecode"]
    for r, row in enumerate(rows[1:], start=2):
        if len(row) != len(columns):
            raise _csv_error(path, f"row {r}", f"has {len(row)} fields, the header has {len(columns)}")
        for c, cell in enumerate(row):
            if c == tc_col:
                continue
            try:
                values[r - 2, c] = float(cell)
            except ValueError:
                raise _csv_error(path, f"row {r}, column {columns[c]}", f"{cell!r} is not a number") from None
            if not math.isfinite(values[r - 2, c]):
                raise _csv_error(path, f"row {r}, column {columns[c]}", f"{cell!r} is not a finite number")
        try:
            parsed_tc.append(parse_timecode(row[tc_col]))
        except ValueError as e:
            raise _csv_error(path, f"row {r}, column Timecode", str(e)) from None
        timecodes.append(row[tc_col])

    rate = _infer_rate([p[3] for p in parsed_tc])
    absolute = np.array([h * 3600 + m * 60 + s + (ff + frac) / rate for h, m, s, ff, frac in parsed_tc], np.float64)
    timestamps = absolute - absolute[0]
    steps = np.diff(timestamps)
    if np.any(steps <= 0):
        r = int(np.argmax(steps <= 0)) + 3
        raise _csv_error(path, f"row {r}, column Timecode", f"{timecodes[r - 2]!r} does not come after the previous row")

    weights = np.zeros((num_rows, NUM_UNITS), np.float32)
    for name in LIVELINK_CSV_BLENDSHAPES:
        col = values[:, lower[name.lower()]]
        bad = np.flatnonzero((col < 0.0) | (col > 1.0))
        if bad.size:
            raise _csv_error(path, f"row {int(bad[0]) + 2}, column {name}", f"value {col[bad[0]]} is outside [0, 1]")
        weights[:, INDEX[name[:1].lower() + name[1:]]] = col

    def angle(name: str) -> np.ndarray:
        return values[:, lower[name.lower()]] if name.lower() in lower else np.zeros(num_rows)

    head_ypr = np.stack([angle("HeadYaw"), angle("HeadPitch"), angle("HeadRoll")], axis=1)
    eye_gaze = np.stack([-angle("LeftEyeYaw"), -angle("LeftEyePitch"),
                         -angle("RightEyeYaw"), -angle("RightEyePitch")], axis=1).astype(np.float32) + 0.0
    eye_roll = np.stack([angle("LeftEyeRoll"), angle("RightEyeRoll")], axis=1)
    rotation = ypr_to_quat(-head_ypr[:, 0], -head_ypr[:, 1], head_ypr[:, 2]).astype(np.float32)

    count_col = lower.get("blendshapecount")
    header = {
        "source": os.path.abspath(path),
        "estimator": "livelink_csv",
        "livelink": {
            "columns": columns,
            "header_line": ",".join(rows[0]),
            "timecodes": timecodes,
            "timecode_rate": rate,
            "blendshape_count": int(values[0, count_col]) if count_col is not None else len(columns) - 2,
            "head_ypr": head_ypr.tolist(),
            "eye_roll": eye_roll.tolist(),
            "newline": newline,
        },
    }
    take = Take(weights=weights, head_rotation=rotation, head_translation=np.zeros((num_rows, 3), np.float32),
                eye_gaze=eye_gaze, valid=np.ones(num_rows, bool), confidence=np.ones(num_rows, np.float32),
                timestamps=timestamps, fps=float(rate), header=header)
    return take.validate()


def _fmt(x: float) -> str:
    return "%.10f" % (float(x) + 0.0)  # + 0.0 turns -0.0 into 0.0


def write_livelink_csv(path: str | os.PathLike, take: Take) -> str:
    """Write ``take`` as a Live Link Face CSV (atomically); return the path.

    Uses the original timecodes, header line, column order and raw angles kept
    by :func:`read_livelink_csv` while they still fit the Take (same frame
    count; angles within 1e-5 rad), else the standard layout with timecodes
    generated from ``take.timestamps`` at :func:`timecode_rate` of ``take.fps``.
    """
    take.validate()
    path = os.fspath(path)
    t = take.num_frames
    ll = take.header.get("livelink") if isinstance(take.header.get("livelink"), dict) else {}
    same_length = len(ll.get("timecodes", ())) == t

    columns = list(ll.get("columns", ()))
    if sorted(c.lower() for c in columns) != sorted(c.lower() for c in STANDARD_COLUMNS):
        columns = list(STANDARD_COLUMNS)
    header_line = ll.get("header_line")
    if not isinstance(header_line, str) or [c.strip() for c in header_line.split(",")] != columns:
        header_line = ",".join(columns)

    if same_length:
        timecodes = list(ll["timecodes"])
    else:
        rate = timecode_rate(take.fps)
        timecodes = [format_timecode(s, rate) for s in take.timestamps]

    head_ypr = quat_to_ypr(take.head_rotation.astype(np.float64))
    head_ypr = np.stack([-head_ypr[:, 0], -head_ypr[:, 1], head_ypr[:, 2]], axis=1)
    eye_roll = np.zeros((t, 2))
    if same_length:
        raw_head = np.asarray(ll.get("head_ypr", np.zeros((t, 3))), np.float64)
        if raw_head.shape == (t, 3) and np.abs(raw_head - head_ypr).max(initial=0.0) <= _RAW_TOLERANCE:
            head_ypr = raw_head
        raw_roll = np.asarray(ll.get("eye_roll", np.zeros((t, 2))), np.float64)
        if raw_roll.shape == (t, 2):
            eye_roll = raw_roll

    g = take.eye_gaze.astype(np.float32)
    by_name = {name.lower(): take.weights[:, INDEX[name[:1].lower() + name[1:]]] for name in LIVELINK_CSV_BLENDSHAPES}
    by_name.update({
        "headyaw": head_ypr[:, 0], "headpitch": head_ypr[:, 1], "headroll": head_ypr[:, 2],
        "lefteyeyaw": -g[:, 0], "lefteyepitch": -g[:, 1], "lefteyeroll": eye_roll[:, 0],
        "righteyeyaw": -g[:, 2], "righteyepitch": -g[:, 3], "righteyeroll": eye_roll[:, 1],
    })
    count = int(ll.get("blendshape_count", len(STANDARD_COLUMNS) - 2))
    newline = ll.get("newline", "\n") if ll.get("newline") in ("\n", "\r\n") else "\n"

    lines = [header_line]
    for i in range(t):
        cells = []
        for c in columns:
            key = c.lower()
            if key == "timecode":
                cells.append(timecodes[i])
            elif key == "blendshapecount":
                cells.append(str(count))
            else:
                cells.append(_fmt(by_name[key][i]))
        lines.append(",".join(cells))
    data = (newline.join(lines) + newline).encode("utf-8")

    return atomic_write(path, lambda f: f.write(data), ".csv.tmp")

