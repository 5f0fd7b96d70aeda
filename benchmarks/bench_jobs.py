"""Job overhead: backend workers shared by the parts of a job, and kept between jobs.

    python benchmarks/bench_jobs.py [--parts 6] [--json]

Each of ``--parts`` parts of one add-on job sends one request to the backend worker, as the
targets of a capture or the clips of a folder do: ``ping`` (nothing but the cost of a part) and
``capture`` of one photo (a frame of the bundled demo clip: tracking and solving included).  Each
is run the way the add-on runs it (the sequence's :class:`SharedWorker`, started once) and with
every part starting its own worker (how the add-on ran parts before the shared worker), side by
side in one process.  Then ``--parts`` jobs of one part each are run one after another, as
repeated clicks do: each job on its own worker (``blender -b``, or the keep-running preference at
0) and every job on the kept worker (``jobs.keep_warm``, an interactive session).  The add-on's
``jobs`` module is used as staged for release; no Blender is needed.  Prints seconds per part
and per job and the ratios, then one JSON line (``run()``'s dict) last.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO_CLIP = REPO / "backend" / "assets" / "demo" / "pexels_wolfgang_langer_emotions.mp4"


def _addon_modules():
    """(jobs, state) of the add-on package staged from this checkout (the release's code)."""
    sys.path.insert(0, str(REPO))
    from backend.blender_runner import staged_addon
    sys.path.insert(0, str(staged_addon().parent))
    return importlib.import_module("facekey.jobs"), importlib.import_module("facekey.state")


class _OwnWorker:
    """A part that starts (and closes) its own worker: the job behind a wrapper the sequence does not
    hand its shared worker to."""

    def __init__(self, job):
        self.job = job

    def start(self) -> None:
        self.job.start()

    def step(self) -> bool:
        return self.job.step()

    def cancel(self) -> None:
        self.job.cancel()


def _photo(folder: Path) -> str:
    """The demo clip's frame 40 as a PNG (a face at rest, looking at the camera)."""
    from backend.footage import open_footage
    import cv2
    frame = next(f for f in open_footage(DEMO_CLIP).frames() if f.index == 40)
    path = folder / "face.png"
    cv2.imwrite(str(path), cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
    return str(path)


def time_sequence(jobs, state_mod, parts: int, op: str, args, shared: bool, log: str) -> float:
    """Seconds for one JobSequence of ``parts`` parts, each one ``op`` request (``args(k)`` its arguments);
    the workers log their starts to ``log``."""
    state = state_mod.JobState()
    seq = jobs.JobSequence("bench", lambda results, errors: (f"{len(results)} parts", {"errors": errors}),
                           state=state)
    for k in range(parts):
        def make(part_state, k=k):
            job = jobs.BackendJob(sys.executable, log, op, args(k), lambda payload: ("done", {}), label=op,
                                  state=part_state, client_kwargs={"cwd": str(REPO)})
            return job if shared else _OwnWorker(job)
        seq.add(f"{op} {k}", make)
    t0 = time.perf_counter()
    seq.run_blocking(poll_interval=0.002)
    seconds = time.perf_counter() - t0
    if state.status != "done" or state.report["errors"]:
        raise RuntimeError(f"{op} sequence failed: {state.error_message or state.report['errors']}")
    return seconds


def time_jobs(jobs, state_mod, count: int, op: str, args, kept: bool, log: str) -> float:
    """Seconds for ``count`` one-part jobs run one after another, each on its own worker or all on a
    kept one (closed at the end)."""
    worker = jobs.SharedWorker()
    t0 = time.perf_counter()
    for k in range(count):
        state = state_mod.JobState()
        seq = jobs.JobSequence("bench", lambda results, errors: ("done", {"errors": errors}), state=state)
        seq.add(op, lambda part_state, k=k: jobs.BackendJob(sys.executable, log, op, args(k), lambda p: ("done", {}),
                                                            label=op, state=part_state,
                                                            client_kwargs={"cwd": str(REPO)}))
        (jobs.keep_warm(seq, worker) if kept else seq).run_blocking(poll_interval=0.002)
        if state.status != "done" or state.report["errors"]:
            raise RuntimeError(f"{op} job failed: {state.error_message or state.report['errors']}")
    seconds = time.perf_counter() - t0
    worker.close()
    return seconds


def run(parts: int = 6) -> dict:
    """Per-part seconds of ``ping`` and photo ``capture`` parts, shared worker vs one worker per part."""
    jobs, state_mod = _addon_modules()
    with tempfile.TemporaryDirectory(prefix="facekey-bench-jobs-") as tmp:
        tmp = Path(tmp)
        photo = _photo(tmp)
        cases = {"ping": lambda k: {},
                 "capture": lambda k: {"footage": photo, "output": str(tmp / f"take{k}.npz"), "settings": {},
                                       "face_index": None}}
        out = {"parts": parts, "python": sys.version.split()[0], "seconds_per_part": {}, "workers_started": {}}
        for op, args in cases.items():
            per, started = {}, {}
            for mode in ("own", "shared"):
                log = str(tmp / f"{op}_{mode}.log")
                per[mode] = time_sequence(jobs, state_mod, parts, op, args, mode == "shared", log) / parts
                started[mode] = Path(log).read_text(errors="replace").count("=== FaceKey backend start")
            out["seconds_per_part"][op], out["workers_started"][op] = per, started
            out[f"{op}_own_over_shared"] = per["own"] / per["shared"]
            per_job = {}
            for mode in ("each", "kept"):
                log = str(tmp / f"{op}_jobs_{mode}.log")
                per_job[mode] = time_jobs(jobs, state_mod, parts, op, args, mode == "kept", log) / parts
                started[f"jobs_{mode}"] = Path(log).read_text(errors="replace").count("=== FaceKey backend start")
            out.setdefault("seconds_per_job", {})[op] = per_job
            out[f"{op}_each_over_kept"] = per_job["each"] / per_job["kept"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", type=int, default=6, help="parts per job (targets, or clips of a folder)")
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    a = ap.parse_args()
    res = run(a.parts)
    if not a.json:
        print(f"{'part':<10}{'own worker (s)':>16}{'shared (s)':>12}{'ratio':>8}")
        for op, per in res["seconds_per_part"].items():
            print(f"{op:<10}{per['own']:>16.3f}{per['shared']:>12.3f}{per['own'] / per['shared']:>8.1f}")
        print(f"{'job':<10}{'own worker (s)':>16}{'kept (s)':>12}{'ratio':>8}")
        for op, per in res["seconds_per_job"].items():
            print(f"{op:<10}{per['each']:>16.3f}{per['kept']:>12.3f}{per['each'] / per['kept']:>8.1f}")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
