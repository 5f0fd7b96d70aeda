"""The ``facekey`` command line: capture, bake (one take or a folder), generate, CSV import/export, demo,
benchmarks.

Errors a user can act on (FaceKeyError) print ``error[code]: message`` and
``hint: ...`` in red and exit with code 2; anything else is a bug and prints
its traceback (exit code 1).  Ctrl-C exits with code 130.
"""
from __future__ import annotations

import functools
import json
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Callable, Optional

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .protocol.arkit import ARKIT_NAMES
from .protocol.errors import FaceKeyError
from .protocol.messages import Progress
from .protocol.take import LOW_CONFIDENCE, format_spans, unsure_runs

__all__ = ["app", "main"]

app = typer.Typer(name="facekey", help="FaceKey: footage of a face -> ARKit-52 shape-key animation.  Three retarget "
                  "modes: name map (bake --mode namemap: keys named like ARKit units), character solve (bake --mode "
                  "solve: any shape keys), mesh-level (mesh-retarget: any mesh, no shape keys; --frame N previews "
                  "one frame).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
bench_app = typer.Typer(help="Benchmarks (each reports ratios measured in one run).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")

#: exit code for errors the user can act on
EXIT_USER_ERROR = 2
#: exit code of a command over many items (footage, takes) when some failed; the others are written
EXIT_SOME_FAILED = 3


def _handle_errors(fn: Callable) -> Callable:
    """Turn FaceKeyError into a red ``error[code]`` + hint and exit code 2; Ctrl-C into 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FaceKeyError as e:
            err = Console(stderr=True, highlight=False)
            err.print(f"[bold red]error\\[{escape(e.code)}][/]: {escape(e.message)}", soft_wrap=True)
            if e.hint:
                err.print(f"[red]hint:[/] {escape(e.hint)}", soft_wrap=True)
            raise typer.Exit(EXIT_USER_ERROR) from None
        except KeyboardInterrupt:
            Console(stderr=True).print("[red]cancelled[/]")
            raise typer.Exit(130) from None

    return wrapper


class _Bar:
    """A rich progress bar fed by ``Progress`` events (unknown totals shown as a spinner-less bar)."""

    def __init__(self, console: Console):
        self._bar = RichProgress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=console, transient=False)
        self._task = None

    def __enter__(self) -> "_Bar":
        self._bar.__enter__()
        self._task = self._bar.add_task("starting", total=None)
        return self

    def __exit__(self, *exc) -> None:
        self._bar.__exit__(*exc)

    def __call__(self, p: Progress) -> None:
        self._bar.update(self._task, completed=p.done, total=p.total if p.total > 0 else None,
                         description=p.message[:28] or "working")


def _top_units(take, count: int = 8) -> list[tuple[str, float, float]]:
    """(unit, peak, mean) of the ``count`` units with the highest peak over valid frames."""
    w = take.weights[take.valid] if take.valid.any() else take.weights
    peak, mean = w.max(axis=0), w.mean(axis=0)
    order = np.argsort(-peak)[:count]
    return [(ARKIT_NAMES[i], float(peak[i]), float(mean[i])) for i in order]


def _calmest_frame(take) -> tuple[int, float]:
    """(frame, summed weights) of the valid frame with the least expression: a candidate rest frame."""
    total = np.where(take.valid, take.weights.sum(axis=1), np.inf)
    frame = int(np.argmin(total))
    return frame, float(total[frame])


def _print_take_summary(console: Console, take, path: str) -> None:
    duration = float(take.timestamps[-1] - take.timestamps[0] + 1.0 / take.fps)
    console.print(f"[bold]{escape(str(path))}[/]: {take.num_frames} frames, {int(take.valid.sum())} with a face, "
                  f"{take.fps:.3f} fps, {duration:.2f} s", soft_wrap=True)
    table = Table("unit", "peak", "mean", title="most active units", title_justify="left")
    for name, peak, mean in _top_units(take):
        table.add_row(name, f"{peak:.3f}", f"{mean:.3f}")
    console.print(table)
    occlusion = take.header.get("occlusion")
    if occlusion and occlusion.get("frames_with_face_covered"):
        console.print(f"a hand covers part of the face on {occlusion['frames_with_face_covered']} frame(s): "
                      "what it covers was not read as expression, and those frames' confidence is lowered",
                      soft_wrap=True)
    fit = take.header.get("fit_error_mm")
    if fit and fit.get("median") is not None:
        unsure = take.header.get("low_confidence_frames", 0)
        verdict = f"no frame below confidence {LOW_CONFIDENCE}"
        if unsure:
            verdict = (f"{unsure} frame(s) with confidence below {LOW_CONFIDENCE}: take frames "
                       + format_spans(unsure_runs(take.confidence)))
        console.print(f"landmark fit error {fit['median']:.2f} mm median, {fit['max']:.2f} mm worst frame; {verdict}",
                      soft_wrap=True)


@app.command()
@_handle_errors
def capture(
    footage: list[Path] = typer.Argument(..., help="Video file, image-sequence folder/pattern, or photo; several "
                                         "(e.g. clips/*.mp4), or a folder of video clips, capture one take "
                                         "each into the -o folder."),
    output: Path = typer.Option(..., "-o", "--output", help="Take file to write (.npz), or a folder, receiving "
                                "<footage name>.npz (several FOOTAGE: one each)."),
    face_index: Optional[int] = typer.Option(None, "--face-index", help="Face to follow (default: the largest)."),
    smoothing: float = typer.Option(1.0, "--smoothing", help="Temporal smoothness strength (0 = off)."),
    exclusive: bool = typer.Option(True, "--exclusive/--no-exclusive",
                                   help="Forbid contradictory unit pairs (blink vs wide, smile vs frown...)."),
    sparsity: Optional[float] = typer.Option(None, "--sparsity", help="Solver sparsity weight (default: solver's)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    max_side: int = typer.Option(720, "--max-side", help="Downscale frames to this longer side in pixels (0 = full size)."),
    estimator: str = typer.Option("solver", "--estimator", help="Estimator name."),
    landmarks: str = typer.Option("mediapipe", "--landmarks",
                                  help="Landmark source: mediapipe (478 points) | fan (face-alignment, 68 points)."),
    fan_weights: Optional[str] = typer.Option(None, "--fan-weights",
                                              help="FAN weights file for --landmarks fan ($FACEKEY_FAN_WEIGHTS)."),
    rest_frame: Optional[int] = typer.Option(None, "--rest-frame",
                                             help="Footage frame (0 = first) where the face is at rest: expressions "
                                                  "are measured from the actor's own neutral there."),
    actor: Optional[Path] = typer.Option(None, "--actor",
                                         help="A take of the same actor (best captured with --rest-frame): reuse "
                                              "its face instead of solving it again, so every take shares one neutral."),
    hands: bool = typer.Option(False, "--hands",
                               help="Look for hands over the face: what a hand covers is not read as expression "
                                    "(tracking takes about 3x longer)."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Frame rate of an image sequence (default 30); videos "
                                        "carry their own frame times."),
) -> None:
    """Capture FOOTAGE into a Take file (several FOOTAGE, or a folder of clips: one take each, into the -o folder)."""
    from .capture import CaptureSettings, capture as run_capture
    from .footage import clip_files
    from .protocol.take import write_take

    settings = CaptureSettings(face_index=face_index, max_side=max_side or None, smoothing=smoothing,
                               exclusive=exclusive, sparsity=sparsity, device=device, estimator=estimator,
                               landmarks=landmarks, fan_weights=fan_weights, rest_frame=rest_frame,
                               actor_take=None if actor is None else str(actor), hands=hands, fps=fps).validate()
    console = Console()
    clips = [(clip_files(f), f) for f in footage]
    if len(footage) > 1 or clips[0][0] is not None:
        _capture_many(console, [Path(c) for found, f in clips for c in (found or [f])], output, settings)
        return
    if output.is_dir():          # one footage into a folder: <footage name>.npz there, as with several
        output = output / f"{_footage_name(footage[0])}.npz"
    _check_output(output, footage[0], *([actor] if actor else []))
    with _Bar(console) as bar:
        take = run_capture(footage[0], settings, progress=bar)
    path = write_take(output, take)
    _print_take_summary(console, take, path)
    if take.num_frames > 1 and rest_frame is None and actor is None:
        frame, total = _calmest_frame(take)
        console.print(f"calmest frame: {frame} (weights sum to {total:.2f}); if the face is at rest there, "
                      f"capture again with --rest-frame {frame} to measure expressions from this actor's neutral",
                      soft_wrap=True)


def _capture_many(console: Console, footage: list[Path], folder: Path, settings) -> None:
    """Capture each of ``footage`` into ``folder/<stem>.npz``; a clip that fails is listed and the rest go on
    (exit code 3 when any failed)."""
    from .capture import capture as run_capture
    from .protocol.take import write_take

    if settings.rest_frame is not None:
        raise FaceKeyError("bad_argument", "--rest-frame names a frame of one clip, not of several.",
                           "Capture the actor's calibration clip alone with --rest-frame, then the other clips "
                           "with --actor pointing at that take.")
    if folder.suffix.lower() == ".npz" or folder.is_file():
        raise FaceKeyError("bad_argument", f"-o {folder} is a file name; several footage need a folder.",
                           "Pass a folder for the takes, e.g. -o takes/.")
    _check_output(folder, *footage, folder=True)
    stems: dict[str, Path] = {}
    for f in footage:
        stem = _footage_name(f)
        if stem in stems:
            raise FaceKeyError("bad_argument", f"{stems[stem]} and {f} would both be written as {stem}.npz.",
                               "Rename one of them, or capture them into separate folders.")
        stems[stem] = f
    table = Table("footage", "take", "frames", "with a face", "calmest frame", title="captured", title_justify="left")
    failed = []
    for k, (stem, f) in enumerate(stems.items()):
        console.print(f"[bold]{k + 1}/{len(stems)}[/] {escape(str(f))}", soft_wrap=True)
        try:
            with _Bar(console) as bar:
                take = run_capture(f, settings, progress=bar)
        except FaceKeyError as e:
            failed.append((f, e))
            continue
        path = write_take(folder / f"{stem}.npz", take)
        calm = f"{_calmest_frame(take)[0]}" if take.valid.any() else "-"
        table.add_row(escape(str(f)), escape(path), str(take.num_frames), str(int(take.valid.sum())), calm)
    console.print(table)
    _print_failures(console, failed, "not captured")
    if failed:
        raise typer.Exit(EXIT_SOME_FAILED)


def _footage_name(footage: Path) -> str:
    """The name a take of ``footage`` is written under: a file's stem, a folder's name, and a pattern's folder
    name (``frames/*.png`` and ``frames/f_%04d.png`` -> ``frames``)."""
    if any(ch in footage.name for ch in "*?[") or re.search(r"%0?\d*d", footage.name):
        return os.path.basename(os.path.abspath(footage.parent)) or "take"
    return footage.stem if footage.suffix else footage.name


def _check_output(output: Path, *inputs: Path, folder: bool = False) -> None:
    """Refuse, before any work is done, an ``-o`` that is one of ``inputs`` (writing it would destroy the
    input) or that cannot be written: a folder where a file is wanted (``folder`` False), a parent that is a
    file, a folder without write permission."""
    out = Path(output)
    for src in inputs:
        same = os.path.samefile(out, src) if out.exists() and Path(src).exists() else \
            os.path.realpath(out) == os.path.realpath(src)
        if same:
            raise FaceKeyError("bad_argument", f"-o {out} is the input {src}: writing there would destroy it.",
                               "Write to another file name; FaceKey never changes its inputs.")
    if not folder and out.is_dir():
        raise FaceKeyError("bad_argument", f"-o {out} is a folder.", "Give the name of the file to write.")
    where = Path(os.path.abspath(out if folder else out.parent))
    while not where.exists() and where != where.parent:
        where = where.parent
    if not where.is_dir():
        raise FaceKeyError("bad_argument", f"-o {out} cannot be written: {where} is a file, not a folder.",
                           "Pick an output in a folder.")
    if not os.access(where, os.W_OK | os.X_OK):
        raise FaceKeyError("bad_argument", f"-o {out} cannot be written: no permission to write in {where}.",
                           "Pick an output in a folder you can write to.")


def _print_failures(console: Console, failed: list[tuple], what: str) -> None:
    """One red line (name, code, message) and the hint for each ``(path, FaceKeyError)`` of a many-item command."""
    for path, e in failed:
        console.print(f"[bold red]{escape(os.path.basename(str(path)))} {what}[/] \\[{escape(e.code)}]: "
                      f"{escape(e.message)}", soft_wrap=True)
        if e.hint:
            console.print(f"  [red]hint:[/] {escape(e.hint)}", soft_wrap=True)


def _name_map_args(name_map: str) -> tuple[str, Optional[str]]:
    """``auto|arkit|livelink`` or a JSON file path -> (kind, path); validated before Blender starts."""
    from .protocol.namemap import KINDS, load_name_map

    if name_map in KINDS and name_map != "custom":
        return name_map, None
    if name_map.lower().endswith(".json") or os.path.isfile(name_map):
        load_name_map("custom", name_map)
        return "custom", os.path.abspath(name_map)
    raise FaceKeyError("bad_argument", f"--name-map {name_map!r} is neither auto/arkit/livelink nor a JSON file.",
                       "Use --name-map auto, arkit, livelink or a path to a .json map.")


# Parameters ``bake`` and ``batch`` share.
CharacterArgument = Annotated[Path, typer.Argument(help="Character .blend (or .glb for --mode solve) holding the "
                                                        "target meshes.")]
ObjectsOption = Annotated[str, typer.Option("--objects", help="Comma-separated mesh object names with shape keys.")]
NameMapOption = Annotated[str, typer.Option("--name-map", help="auto | arkit | livelink | FILE.json")]
StartFrameOption = Annotated[float, typer.Option("--start-frame", help="Scene frame of a take's first frame.")]
HeadBoneOption = Annotated[Optional[str], typer.Option("--head-bone", help="ARMATURE:BONE that receives head rotation.")]
HeadObjectOption = Annotated[Optional[str], typer.Option("--head-object", help="Object that receives head rotation.")]
BlenderOption = Annotated[Optional[str], typer.Option(
    "--blender", help="Blender executable: the .blend it writes opens in that version and newer (default: "
    "$FACEKEY_BLENDER, else the bpy module, which writes Blender 5.0 files).")]
ModeOption = Annotated[str, typer.Option("--mode", help="namemap (keys named like ARKit units) | solve (solve for "
                                         "the character's own keys; one object; CHARACTER may be a .glb).  The third "
                                         "mode, mesh-level for meshes without shape keys, is `facekey mesh-retarget`.")]
KeysOption = Annotated[Optional[list[str]], typer.Option("--keys", help="--mode solve: glob of keys to drive "
                                                          "(repeatable), e.g. 'Fcl_*'.")]
ExcludeKeysOption = Annotated[Optional[list[str]], typer.Option("--exclude-keys",
                                                                 help="--mode solve: glob of keys never driven.")]
BridgeOption = Annotated[bool, typer.Option("--bridge-unsure", help="Also bridge the stretches the capture is unsure "
                                           "of (confidence below 0.5): a new action per object and take whose "
                                           "keys there follow a line between the trusted keys around them; the "
                                           "baked action is kept.")]


@app.command()
@_handle_errors
def bake(
    take: Annotated[Path, typer.Argument(help="Take file (.npz).")],
    character: CharacterArgument,
    output: Annotated[Path, typer.Option("-o", "--output", help=".blend to write (the input is not modified).")],
    objects: ObjectsOption,
    name_map: NameMapOption = "auto",
    start_frame: StartFrameOption = 1.0,
    head_bone: HeadBoneOption = None,
    head_object: HeadObjectOption = None,
    blender: BlenderOption = None,
    mode: ModeOption = "namemap",
    keys: KeysOption = None,
    exclude_keys: ExcludeKeysOption = None,
    bridge_unsure: BridgeOption = False,
) -> None:
    """Bake TAKE onto shape keys of objects in CHARACTER, writing a new .blend."""
    from .blender_runner import bake_take_file
    from .protocol.take import read_take

    names = _target_names(objects, character)
    head_target = _head_target(head_bone, head_object)
    _check_mode(mode, name_map, head_target, keys, exclude_keys)
    if mode == "solve":
        _bake_solve(take, character, output, names, keys or [], exclude_keys or [], start_frame, blender, bridge_unsure)
        return
    read_take(take)  # fail fast on a bad take, before Blender starts
    kind, map_path = _name_map_args(name_map)
    console = Console()
    with console.status("baking in Blender"):
        report = bake_take_file(take, character, output, names, name_map=kind, map_path=map_path,
                                start_frame=start_frame, head_target=head_target, blender=blender,
                                bridge_unsure=bridge_unsure)
    console.print(f"[bold]{escape(str(report.get('output')))}[/]: {report.get('frames')} frames baked")
    _print_bake_report(console, report)




@app.command()
@_handle_errors
def batch(
    takes: Annotated[Path, typer.Argument(help="Folder of takes: Take .npz files and Live Link Face .csv files.")],
    character: CharacterArgument,
    output: Annotated[Path, typer.Option("-o", "--output", help=".blend to write, a new action per take (the input "
                                                               "is not modified).")],
    objects: ObjectsOption,
    name_map: NameMapOption = "auto",
    start_frame: StartFrameOption = 1.0,
    head_bone: HeadBoneOption = None,
    head_object: HeadObjectOption = None,
    blender: BlenderOption = None,
    mode: ModeOption = "namemap",
    keys: KeysOption = None,
    exclude_keys: ExcludeKeysOption = None,
    bridge_unsure: BridgeOption = False,
) -> None:
    """Bake every take in the folder TAKES onto shape keys of objects in CHARACTER, in one Blender run.

    Each take gets its own new actions, named after its file (FK_<stem>, and FK_<stem>_head for the
    head rotation); existing actions are kept.  A take that cannot be read, solved or baked is
    listed and the others still bake; the exit code is then 3.
    """
    from .blender_runner import bake_take_folder
    from .protocol.takefolder import take_files

    names = _target_names(objects, character)
    head_target = _head_target(head_bone, head_object)
    _check_mode(mode, name_map, head_target, keys, exclude_keys)
    paths = take_files(takes)  # fail fast on an empty folder, before Blender starts
    console = Console()
    if mode == "solve":
        from .retarget.character_solve import SolveSettings
        from .retarget.pipeline import solve_bake_folder

        if len(names) != 1:
            raise FaceKeyError("bad_argument", "--mode solve takes exactly one object in --objects.",
                               "Name the mesh that carries the face's shape keys, e.g. --objects Face.")
        with console.status(f"measuring, solving and baking {len(paths)} takes"):
            report = solve_bake_folder(takes, character, output, names[0], start_frame=start_frame, blender=blender,
                                       settings=SolveSettings(keys=keys or [], exclude=exclude_keys or []),
                                       bridge_unsure=bridge_unsure)
    else:
        kind, map_path = _name_map_args(name_map)
        with console.status(f"baking {len(paths)} takes in Blender"):
            report = bake_take_folder(takes, character, output, names, name_map=kind, map_path=map_path,
                                      start_frame=start_frame, head_target=head_target, blender=blender,
                                      bridge_unsure=bridge_unsure)
    console.print(f"[bold]{escape(str(report['output']))}[/]: {len(report['takes'])} of {len(paths)} takes baked",
                  soft_wrap=True)
    for path, take_report in report["takes"].items():
        console.print(f"[bold]{escape(os.path.basename(path))}[/]: {take_report.get('frames')} frames")
        if mode == "solve":
            console.print(f"  action {take_report['action']!r}, key take {escape(take_report['key_take'])}",
                          soft_wrap=True)
            _print_solve_report(console, take_report["solve"])
            _print_bridged(console, take_report.get("bridged"))
        else:
            _print_bake_report(console, take_report)
    _print_failures(console, [(path, FaceKeyError.from_dict(err)) for path, err in report["failed"].items()],
                    "not baked")
    if report["failed"]:
        raise typer.Exit(EXIT_SOME_FAILED)


def _check_mode(mode: str, name_map: str, head_target, keys, exclude_keys) -> None:
    """Refuse options the retarget ``mode`` would silently not use: the name map and a head target with
    ``solve`` (it solves the character's own keys and bakes no head), --keys / --exclude-keys with
    ``namemap`` (the name map picks keys by their names)."""
    if mode not in ("namemap", "solve"):
        raise FaceKeyError("bad_argument", f"--mode {mode!r} is not namemap or solve.",
                           "Use --mode namemap or --mode solve.")
    if mode == "solve" and (name_map != "auto" or head_target is not None):
        what = "--name-map" if name_map != "auto" else "a head target (--head-bone / --head-object)"
        raise FaceKeyError("bad_argument", f"--mode solve does not use {what}: it solves for the character's own "
                           "shape keys and bakes no head rotation.",
                           "Leave it out (pick keys with --keys / --exclude-keys), or use --mode namemap.")
    if mode == "namemap" and (keys or exclude_keys):
        raise FaceKeyError("bad_argument", "--keys / --exclude-keys choose the keys of --mode solve; the name map "
                           "picks keys by their names.", "Use --mode solve, or a custom --name-map file.")


def _target_names(objects: str, character: Path) -> list[str]:
    """``--objects`` split into names; the character file must exist."""
    names = [n.strip() for n in objects.split(",") if n.strip()]
    if not names:
        raise FaceKeyError("no_targets", "--objects names no object.", "Pass mesh names, e.g. --objects Head,Beard.")
    if not character.is_file():
        raise FaceKeyError("file_missing", f"Character file not found: {character}", "Check the .blend path.")
    return names


def _head_target(head_bone: Optional[str], head_object: Optional[str]):
    """``--head-bone ARMATURE:BONE`` -> (armature, bone), ``--head-object`` -> name, neither -> None."""
    if head_bone and head_object:
        raise FaceKeyError("bad_argument", "--head-bone and --head-object are exclusive.", "Pass only one of them.")
    if not head_bone:
        return head_object or None
    armature, sep, bone = head_bone.partition(":")
    if not sep or not armature or not bone:
        raise FaceKeyError("bad_argument", f"--head-bone {head_bone!r} is not ARMATURE:BONE.",
                           "Write the armature object and bone names, e.g. --head-bone Rig:head.")
    return armature, bone


def _bake_solve(take: Path, character: Path, output: Path, names: list[str], keys: list[str],
                exclude: list[str], start_frame: float, blender: Optional[str], bridge_unsure: bool) -> None:
    """``--mode solve``: measure the object in Blender, solve its own key values, bake them."""
    from .retarget.character_solve import SolveSettings
    from .retarget.pipeline import solve_bake

    if len(names) != 1:
        raise FaceKeyError("bad_argument", "--mode solve takes exactly one object in --objects.",
                           "Name the mesh that carries the face's shape keys, e.g. --objects Face.")
    console = Console()
    with console.status("measuring, solving and baking"):
        report = solve_bake(take, character, output, names[0], settings=SolveSettings(keys=keys, exclude=exclude),
                            start_frame=start_frame, blender=blender, bridge_unsure=bridge_unsure)
    console.print(f"[bold]{escape(str(report['output']))}[/]: {report['frames']} frames baked, action "
                  f"{report['action']!r}, key take {escape(report['key_take'])}")
    _print_solve_report(console, report["solve"])
    _print_bridged(console, report.get("bridged"))


def _print_solve_report(console: Console, solve: dict) -> None:
    """Keys driven, motion left over, units the character cannot reproduce (one take's character solve)."""
    used = sorted(((v["peak"], k) for k, v in solve["keys"].items() if v["peak"] > 0.05), reverse=True)
    console.print(f"  keys driven: {', '.join(f'{k} ({p:.2f})' for p, k in used) or 'none'}", soft_wrap=True)
    console.print(f"  motion left unreproduced: {solve['take_residual']:.0%} ({solve['points']} face points, "
                  f"anchors from {solve['anchors']})")
    if solve["unmapped_units"]:
        console.print(f"  [yellow]units this character cannot reproduce[/]: {', '.join(solve['unmapped_units'])}",
                      soft_wrap=True)


def _print_bridged(console: Console, bridged: Optional[dict], indent: str = "  ") -> None:
    """One line for a ``--bridge-unsure`` result (``bake.bridge.bridge_if_unsure``'s dict; None: not asked)."""
    if bridged and bridged["action"]:
        head = (f", head rotation into {bridged['head']!r}" if bridged.get("head")
                else f" (head rotation left as it is: {bridged['head_skipped']})" if bridged.get("head_skipped")
                else "")
        console.print(f"{indent}bridged {len(bridged['stretches'])} unsure stretch(es) (scene frames "
                      f"{format_spans(bridged['stretches'])}) into action {bridged['action']!r}{head}", soft_wrap=True)
    elif bridged:
        console.print(f"{indent}nothing bridged: {bridged['skipped']}", soft_wrap=True)


def _print_bake_report(console: Console, report: dict) -> None:
    """The per-object lines of one take's bake report: actions, mapped/unmapped units, skipped objects."""
    for name, info in report.get("objects", {}).items():
        console.print(f"  [bold]{name}[/]: action {info.get('action')!r}, {len(info.get('mapped', {}))} units mapped",
                      soft_wrap=True)
        if info.get("unmapped_units"):
            console.print(f"    units without a shape key: {', '.join(info['unmapped_units'])}", soft_wrap=True)
        if info.get("unused_keys"):
            console.print(f"    shape keys no unit drives: {', '.join(info['unused_keys'])}", soft_wrap=True)
        for line in info.get("warnings", []):
            console.print(f"    [yellow]{escape(line)}[/]", soft_wrap=True)
        _print_bridged(console, info.get("bridged"), "    ")
    for name, reason in report.get("skipped", {}).items():
        console.print(f"  [yellow]skipped {name}[/]: {reason}")
    if report.get("head"):
        console.print(f"  head rotation: action {report['head']!r}")
    if report.get("low_confidence_frames"):
        console.print(f"  {report['low_confidence_frames']} frame(s) the capture is unsure of (confidence below "
                      f"{LOW_CONFIDENCE}): see each action's facekey_confidence curve", soft_wrap=True)


@app.command()
@_handle_errors
def generate(
    label: str = typer.Argument(..., help="Expression label: bareteeth, cheeks_in, eyebrow, high_smile, lips_back, "
                                "lips_up, mouth_down, mouth_extreme, mouth_middle, mouth_open, mouth_side, mouth_up."),
    output: Path = typer.Option(..., "-o", "--output", help="Take file to write (.npz); with --count > 1 a folder "
                                "receiving <label>_<seed>.npz each (<label>_<seed>_mirrored.npz with --mirror)."),
    gan: Optional[Path] = typer.Option(None, "--gan", envvar="FACEKEY_MOTION3DGAN",
                                       help="Motion3DGAN weights (python -m training.motion3dgan.train); "
                                       "default: the bundled generator."),
    s2d: Optional[Path] = typer.Option(None, "--s2d", envvar="FACEKEY_S2D",
                                       help="S2D-Dec weights (python -m training.s2d.train); default: the bundled "
                                       "decoder."),
    count: int = typer.Option(1, "-n", "--count", help="Clips to generate (seeds seed, seed + 1, ...)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the first clip."),
    fps: float = typer.Option(30.0, "--fps", help="Frame rate written into the takes."),
    mirror: bool = typer.Option(False, "--mirror", help="Swap the face's sides (mouth_side goes to the subject's "
                                "left; --mirror for the right)."),
) -> None:
    """Generate labelled expression clips (neutral to apex) as Takes: Motion3DGAN + S2D-Dec, no Blender."""
    from .generation.generate import apex_units, generate_clips
    from .protocol.take import write_take

    if count > 1 and (output.suffix.lower() == ".npz" or output.is_file()):
        raise FaceKeyError("bad_argument", f"-o {output} is a file name; --count {count} needs a folder.",
                           "Pass a folder for the takes, e.g. -o clips/.")
    console = Console()
    with console.status(f"generating {count} {label} clip(s)"):
        takes = generate_clips(label, count, gan, s2d, seed=seed, fps=fps, mirror=mirror)
    table = Table("take", "frames", "apex units", "left of the dense motion (mm)", title=f"generated: {label}",
                  title_justify="left")
    for take in takes:
        path = write_take(output / f"{take.header['source'][len('generated_'):]}.npz" if count > 1 else output, take)
        top = ", ".join(f"{name} {w:.2f}" for name, w in list(apex_units(take.weights[-1]).items())[:4])
        table.add_row(escape(path), str(take.num_frames), top or "-", f"{take.header['weights_residual_mm']:.2f}")
    console.print(table)


@app.command("import-csv")
@_handle_errors
def import_csv(
    csv_path: Path = typer.Argument(..., metavar="CSV", help="Live Link Face CSV."),
    output: Path = typer.Option(..., "-o", "--output", help="Take file to write (.npz)."),
) -> None:
    """Convert a Live Link Face CSV into a Take file."""
    from .protocol.livelink import read_livelink_csv
    from .protocol.take import write_take

    _check_output(output, csv_path)
    take = read_livelink_csv(csv_path)
    _print_take_summary(Console(), take, write_take(output, take))


@app.command()
@_handle_errors
def bridge(
    take: Path = typer.Argument(..., help="Take file (.npz) that facekey capture wrote."),
    output: Path = typer.Option(..., "-o", "--output", help="Take file to write (.npz; the input is not changed)."),
) -> None:
    """Bridge the stretches the capture is unsure of (confidence below 0.5): their weights and eye gaze
    follow a straight line between the trusted frames on either side (head pose and confidence kept)."""
    from .protocol.bridge import bridge_take
    from .protocol.take import read_take, write_take

    _check_output(output, take)
    bridged, runs = bridge_take(read_take(take))
    path = write_take(output, bridged)
    Console().print(f"[bold]{escape(str(path))}[/]: bridged {len(runs)} unsure stretch(es), take frames "
                    f"{format_spans(runs)} ({sum(b - a + 1 for a, b in runs)} of {bridged.num_frames} frames)",
                    soft_wrap=True)


@app.command("export-csv")
@_handle_errors
def export_csv(
    take: Path = typer.Argument(..., help="Take file (.npz)."),
    output: Path = typer.Option(..., "-o", "--output", help="Live Link Face CSV to write."),
) -> None:
    """Write a Take as a Live Link Face CSV."""
    from .protocol.livelink import write_livelink_csv
    from .protocol.take import read_take

    _check_output(output, take)
    t = read_take(take)
    path = write_livelink_csv(output, t)
    Console().print(f"[bold]{escape(str(path))}[/]: {t.num_frames} frames")


@app.command("mesh-retarget")
@_handle_errors
def mesh_retarget(
    take: Path = typer.Argument(..., help="Take file (.npz), or a folder of takes (.npz, Live Link .csv): one "
                                ".pc2 each into the -o folder."),
    target: Path = typer.Argument(..., help="Target head mesh (.obj, metres; x = its left, y up, z out of the face)."),
    output: Path = typer.Option(..., "-o", "--output", help="Point Cache 2 file to write (.pc2: sampled at the take's "
                                "frame rate on its own clock, sample k at k / fps seconds, to play at that rate; "
                                "with --frame that one frame); with --frame also an .obj (the deformed "
                                "TARGET at that frame); for a take folder, a folder."),
    serep: Optional[Path] = typer.Option(None, "--serep", help="SEREP weights (serep.safetensors); default: "
                                         "blendshape transfer of the built-in units."),
    start_frame: float = typer.Option(1.0, "--start-frame", help="Frame of the take's first sample."),
    frame: Optional[int] = typer.Option(None, "--frame", help="Preview: transfer only this take frame (0-based) "
                                        "and write it as an .obj (-o *.obj) or a 1-sample .pc2 at start frame + its "
                                        "time x fps (N for a constant-rate take)."),
) -> None:
    """Mesh-level retarget: per-frame geometry of TARGET (any topology, no shape keys needed) as a .pc2
    point cache for Blender's Mesh Cache modifier (or one frame with --frame; or one .pc2 per take of a folder)."""
    from .protocol.take import select_frames
    from .protocol.takefolder import read_any_take
    from .retarget.mesh_transfer import (blendshape_displacements, read_obj, take_to_mesh, weights_at_rate,
                                         write_deformed_obj)
    from .protocol.pc2 import write_pc2

    verts, _ = read_obj(target)
    displacements = blendshape_displacements
    if serep is not None:
        from .retarget.serep import SerepRetarget, load_serep
        displacements = SerepRetarget(load_serep(serep)).displacements
    method = "SEREP" if serep else "blendshape transfer"
    console = Console()
    if take.is_dir():
        _mesh_retarget_folder(console, take, verts, displacements, output, start_frame, frame, method)
        return
    _check_output(output, take, target)
    t = read_any_take(take)          # a Take .npz or a Live Link .csv, as in a folder
    if frame is not None:
        t = select_frames(t, [frame])
    elif output.suffix.lower() == ".obj":
        raise FaceKeyError("bad_argument", "An .obj output holds one frame: pass --frame N.",
                           "Add --frame N for a one-frame preview, or write a .pc2 for the whole take.")
    frames = take_to_mesh(t.weights if frame is not None else weights_at_rate(t), verts, displacements=displacements)
    if output.suffix.lower() == ".obj":
        path = write_deformed_obj(target, output, frames[0])
    else:
        path = write_pc2(output, frames, start_frame=start_frame + (float(t.timestamps[0]) * t.fps if frame is not None
                                                                     else 0.0))
    moved = float(np.abs(frames - verts[None]).max()) * 1000
    what = f"take frame {frame}" if frame is not None else f"{len(frames)} samples"
    console.print(f"[bold]{escape(str(path))}[/]: {what} x {frames.shape[1]} points, "
                  f"largest displacement {moved:.1f} mm ({method})")


def _mesh_retarget_folder(console: Console, folder: Path, verts: np.ndarray, displacements, output: Path,
                          start_frame: float, frame: Optional[int], method: str) -> None:
    """``mesh-retarget`` of every take in ``folder`` into ``output/<stem>.pc2``; a take that fails is
    listed and the others are written (exit code 3)."""
    from .protocol.pc2 import write_pc2
    from .protocol.takefolder import read_any_take, take_files
    from .retarget.mesh_transfer import FaceTransfer, fit_face, take_to_mesh, weights_at_rate

    if frame is not None:
        raise FaceKeyError("bad_argument", "--frame previews one frame of one take, not of a folder.",
                           "Pass a single take file with --frame, or leave --frame out.")
    if output.suffix.lower() in (".pc2", ".obj") or output.is_file():
        raise FaceKeyError("bad_argument", f"-o {output} is a file name; a take folder needs an output folder.",
                           "Pass a folder for the point caches, e.g. -o caches/.")
    failed = []
    paths = take_files(folder)
    transfer = FaceTransfer(fit_face(verts), verts)     # one fit for every take: a mesh without a face fails once
    for path in paths:
        try:
            frames = take_to_mesh(weights_at_rate(read_any_take(path)), verts, displacements=displacements,
                                  transfer=transfer)
        except FaceKeyError as e:
            failed.append((path, e))
            continue
        stem = os.path.splitext(os.path.basename(path))[0]
        written = write_pc2(output / f"{stem}.pc2", frames, start_frame=start_frame)
        console.print(f"[bold]{escape(str(written))}[/]: {len(frames)} samples x {frames.shape[1]} points ({method})",
                      soft_wrap=True)
    _print_failures(console, failed, "not retargeted")
    if failed:
        raise typer.Exit(EXIT_SOME_FAILED)


@app.command()
@_handle_errors
def demo(
    out_dir: Path = typer.Option(Path("demo_out"), "-o", "--output", help="Folder for the demo outputs."),
    footage: Optional[Path] = typer.Option(None, "--footage", help="Use this clip instead of the bundled one."),
    blender: BlenderOption = None,
) -> None:
    """Capture the sample clip, bake it onto a built-in head, and write previews."""
    from .demo import run_demo

    console = Console()
    with _Bar(console) as bar:
        paths = run_demo(out_dir, footage=footage, blender=blender, progress=bar)
    for name, path in paths.items():
        console.print(f"  {name:<8} {escape(str(path))}")


@bench_app.command("capture")
@_handle_errors
def bench_capture(
    clip: Optional[Path] = typer.Argument(None, help="Clip to time (default: the Pexels sample)."),
    max_side: Optional[int] = typer.Option(None, "--max-side", help="Downscale frames to this longer side."),
) -> None:
    """Decode / landmarks / full-capture speed on one clip."""
    from rich.table import Table

    from .bench import capture_speed

    r = capture_speed(clip, max_side=max_side)
    table = Table(title=f"{escape(Path(r['clip']).name)}: {r['frames']} frames at {r['clip_fps']:.2f} fps, "
                        f"{r['cores']} cores")
    for col in ("stage", "seconds", "frames / s"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    for stage, label in (("decode", "decode only"), ("landmarks", "decode + landmarks"),
                         ("hands", "decode + landmarks + hands"), ("capture", "full capture")):
        table.add_row(label, f"{r['seconds'][stage]:.2f}", f"{r['fps'][stage]:.1f}")
    console = Console()
    console.print(table)
    console.print(f"full capture / landmarks only: [bold]{r['capture_vs_landmarks']:.2f}[/] (goal >= 0.8); "
                  f"real-time factor [bold]{r['realtime_factor']:.2f}[/] (goal > 1); landmarks with hands / "
                  f"without: [bold]{r['hands_vs_landmarks']:.2f}[/] (a hand over the face on "
                  f"{r['frames_with_face_covered']} frames)")
    hs = r["hand_search"]
    covered = hs["frames_with_face_covered"]
    console.print(f"hand mask, palm detector on every other frame while no hand is in view vs every frame: "
                  f"[bold]{hs['speedup']:.2f}x[/] faster, face covered on {covered['skip_while_none']} vs "
                  f"{covered['every_frame']} frames, mask IoU {hs['mask_iou']:.3f}")
    console.print_json(json.dumps(r))


@bench_app.command("bake")
@_handle_errors
def bench_bake(
    frames: int = typer.Option(10_000, "--frames", help="Frames per curve."),
    keys: int = typer.Option(52, "--keys", help="Shape keys."),
    slow_frames: int = typer.Option(2_000, "--slow-frames", help="Frames for the keyframe_insert comparison."),
) -> None:
    """Bulk foreach_set bake vs a keyframe_insert loop in Blender."""
    from .bench import bake_speed

    Console().print_json(json.dumps(bake_speed(frames=frames, keys=keys, slow_frames=slow_frames)))


@bench_app.command("fidelity")
@_handle_errors
def bench_fidelity(
    output: Path = typer.Option(Path("fidelity_report.json"), "-o", "--output", help="JSON report to write."),
    quick: bool = typer.Option(False, "--quick", help="The small size the test suite runs."),
    part: Optional[list[str]] = typer.Option(None, "--part", help="synthetic | landmarks | real (repeatable; default all)."),
    realdata: Optional[Path] = typer.Option(None, "--realdata", help="Real test data folder (default: ../shared/realdata)."),
    seed: int = typer.Option(0, "--seed", help="Base seed of the synthetic clips."),
) -> None:
    """Capture fidelity: synthetic ground truth, annotated landmarks, real-footage checks."""
    from .bench import REPO
    from .fidelity.report import PARTS, fidelity_table, run_fidelity, write_report

    if realdata is not None and not realdata.is_dir():
        raise FaceKeyError("file_missing", f"--realdata folder not found: {realdata}",
                           "Pass the shared realdata folder, or leave --realdata out to skip the real-data parts.")
    folder = realdata or REPO.parent / "shared" / "realdata"
    console = Console(width=None if sys.stdout.isatty() else 140)   # a wide table also when piped to a file
    with console.status("fidelity benchmark") as status:
        report = run_fidelity("quick" if quick else "default", tuple(part or PARTS),
                              folder if folder.is_dir() else None, seed, progress=status.update)
    console.print(fidelity_table(report))
    console.print(f"report: {escape(str(write_report(report, output)))}")


@bench_app.command("rendered")
@_handle_errors
def bench_rendered(
    recording: Path = typer.Argument(..., help="The performance: a Live Link Face .csv or a Take .npz."),
    rig: Path = typer.Argument(..., help="The character: a .blend, or a .glb (imported into an empty scene)."),
    object_name: str = typer.Option(..., "--object", help="Its mesh with ARKit shape keys."),
    every: int = typer.Option(4, "--every", min=1, help="Render every N-th row of the performance."),
    size: int = typer.Option(480, "--size", min=64, help="Rendered image side, pixels."),
    name_map: NameMapOption = "auto",
    turn: bool = typer.Option(True, "--turn/--no-turn",
                              help="Also a pass with the head turned (the recording's turn, or a sweep if it holds still)."),
    output: Path = typer.Option(Path("rendered_report.json"), "-o", "--output", help="JSON report to write."),
    keep: Optional[Path] = typer.Option(None, "--keep", help="Folder to keep each pass's frames and captured take in."),
    blender: BlenderOption = None,
) -> None:
    """Render a performance on your character, capture the frames, and score the capture against it."""
    from .fidelity.rendered_performance import performance_on_rig
    from .fidelity.report import rendered_table, write_report
    from .protocol.takefolder import read_any_take

    for label, path in (("recording", recording), ("rig", rig)):
        if not path.is_file():
            raise FaceKeyError("file_missing", f"{label} not found: {path}", f"Pass the path of an existing {label} file.")
    if rig.suffix.lower() not in (".blend", ".glb"):
        raise FaceKeyError("bad_argument", f"the rig must be a .blend or .glb file, not {rig.name}",
                           "Import the character into Blender and save it as a .blend, or export it as a .glb.")
    kind, map_path = _name_map_args(name_map)
    truth = read_any_take(recording)
    console = Console(width=None if sys.stdout.isatty() else 120)
    with console.status(f"rendering {recording.name} on {object_name} and capturing it"):
        perf = performance_on_rig(truth, rig, object_name, every, turn=turn, name_map=(kind, map_path),
                                  image_side=size, blender=blender, keep=keep)
    perf.update({"recording": str(recording), "rig": str(rig)})
    console.print(rendered_table(perf, recording.name))
    if keep is not None:
        console.print(f"frames and captured takes: {escape(str(keep))}/frontal" + ("" if "head_turn" not in perf
                      else f", {escape(str(keep))}/turned"))
    console.print(f"report: {escape(str(write_report(perf, output)))}")


def main() -> None:
    """Entry point of the ``facekey`` script."""
    app()


if __name__ == "__main__":
    main()
