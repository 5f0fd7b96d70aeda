"""CoMA sequences as labelled motions: correspondence, per-subject frame, automatic onset-to-apex cut."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import trimesh

from backend.facemodel import load_face_model
from backend.facemodel.canonical import NUM_MESH
from backend.generation.generate import weights_from_dense
from backend.protocol.arkit import ARKIT_NAMES, INDEX
from backend.protocol.errors import FaceKeyError
from training.motion3dgan.coma import coma_motions, flame_map, onset_apex_segments

from backend.protocol.labels import LABELS
from training.motion3dgan.data import RECIPES


def _ramp(apexes: int) -> np.ndarray:
    """(T,) expression level: neutral, then ``apexes`` times up to 1, held, and back down."""
    up = np.linspace(0.0, 1.0, 6)
    one = np.concatenate([np.zeros(3), up, np.ones(2), up[::-1]])            # 17 frames: apexes 17 apart
    return np.concatenate([one] * apexes + [np.zeros(3)])


def _write_sequence(folder, label: str, identity: np.ndarray, apexes: int, pose) -> np.ndarray:
    """A CoMA-style sequence of ``label`` on our model's actor ``identity``, on a finer, shuffled topology
    (subdivided, vertices permuted) moved by ``pose`` = (scale, rotation, translation); returns the true
    (T, 478, 3) model-frame motion."""
    m = load_face_model()
    scale, rot, trans = pose
    w = np.zeros((len(_ramp(apexes)), 52), np.float32)
    for name, value in RECIPES[label].items():
        w[:, INDEX[name]] = value * _ramp(apexes)
    verts = m.vertices(w, identity.astype(np.float32)).astype(np.float64)           # (T, 478, 3)
    tris = np.asarray(m.triangles)
    order = np.random.default_rng(0).permutation(len(trimesh.remesh.subdivide(verts[0, :NUM_MESH], tris)[0]))
    folder.mkdir(parents=True)
    for t, v in enumerate(verts):
        fine, faces = trimesh.remesh.subdivide(v[:NUM_MESH], tris)
        inverse = np.argsort(order)
        mesh = trimesh.Trimesh(scale * fine[order] @ rot.T + trans, inverse[faces], process=False)
        mesh.export(folder / f"{label}.{t + 1:06d}.ply")
    return verts


@pytest.fixture(scope="module")
def coma_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("coma")
    a = np.cos(np.radians(6.0)), np.sin(np.radians(6.0))
    tilt = np.array([[1, 0, 0], [0, a[0], -a[1]], [0, a[1], a[0]]])
    rng = np.random.default_rng(3)
    truth = {}
    for subject, apexes, pose, labels in (("FaceTalk_A", 2, (1.1, tilt, np.array([0.01, -0.02, 0.03])), LABELS),
                                          ("FaceTalk_B", 1, (0.95, np.eye(3), np.zeros(3)), ("eyebrow", "mouth_open"))):
        ident = rng.standard_normal(load_face_model().num_identity) * 0.4     # within reach of the ICP (coma doc)
        for label in labels:
            truth[subject, label] = _write_sequence(root / subject / label, label, ident, apexes, pose)
    (root / "FaceTalk_A" / "not_a_label").mkdir()
    return root, truth


def test_onset_apex_segments_cut_each_rise():
    level = _ramp(2)
    segments = onset_apex_segments(level * 0.01)
    assert len(segments) == 2
    for onset, apex in segments:
        assert level[onset] == 0.0 and level[apex] == 1.0 and level[onset + 1] > 0.0   # last rest frame -> first apex
    assert onset_apex_segments(np.zeros(20)) == []


def test_the_apex_is_the_top_of_the_rise_not_a_hesitation_on_the_way():
    """A 1 % pause halfway up ended the clip there (59 % of the expression): the apex is now the
    largest frame of the stretch above half the peak."""
    m = np.r_[np.zeros(5), np.linspace(0, 0.6, 10), 0.594, np.linspace(0.62, 1.0, 25), np.full(5, 1.0),
              np.linspace(1.0, 0.0, 15), np.zeros(5)]
    (onset, apex), = onset_apex_segments(m)
    assert m[apex] == 1.0 and m[onset] <= 0.1 < m[onset + 1]                # last frame at a tenth -> the top


def test_sequence_frames_are_read_in_frame_order_without_zero_padding(tmp_path):
    """Re-exported sequences name frames 1, 2, ..., 10: sorted as text, frame 10 came second."""
    from training.motion3dgan.coma import coma_sequences
    folder = tmp_path / "FaceTalk_A" / "mouth_open"
    folder.mkdir(parents=True)
    for i in (1, 2, 3, 9, 10, 11):
        (folder / f"mouth_open.{i}.ply").write_text("")
    (_, _, frames), = coma_sequences(tmp_path)
    assert [f.name for f in frames] == [f"mouth_open.{i}.ply" for i in (1, 2, 3, 9, 10, 11)]


def test_coma_clips_are_the_true_motion_in_the_model_frame(coma_root):
    root, truth = coma_root
    test, train, every = (coma_motions(root, frames=12, part=p) for p in ("test", "train", "all"))
    assert len(test.labels) == 14 and len(train.labels) == 12 and len(every.labels) == 26  # first clips held out
    assert train.labels.tolist() == list(range(12))                          # subject A's second rise of each
    assert every.dense.shape == (26, 12, 478, 3) and every.landmarks.shape == (26, 12, 68, 3)
    assert np.abs(every.dense[:, 0]).max() == 0.0                             # every clip starts at zero
    for label in ("eyebrow", "mouth_open", "high_smile", "mouth_side"):
        k = LABELS.index(label)
        true = truth["FaceTalk_A", label]
        true_apex = (true[np.flatnonzero(_ramp(2) == 1.0)[-1]] - true[0])[:NUM_MESH]   # the last apex's motion
        got = train.dense[k, -1, :NUM_MESH]
        # scale and tilt of the capture undone, a finer shuffled topology read through the correspondence
        err = np.linalg.norm(got - true_apex, axis=1).mean()
        assert err < 0.15 * np.linalg.norm(true_apex, axis=1).mean(), (label, err)
        assert train.weights is None                                           # CoMA has no ARKit truth
        apex_w = weights_from_dense(train.dense[k, -1:])[0][0]
        top = [name for name, value in RECIPES[label].items() if value >= 0.5]
        for name in top:        # the recipe's main units read back from the CoMA-style meshes
            assert apex_w[INDEX[name]] == pytest.approx(RECIPES[label][name], abs=0.15), (label, name)
    np.testing.assert_allclose(train.landmarks, train.dense[:, :, [int(i) for i in _ibug()]])


def _ibug():
    from backend.tracking.ibug68 import MEDIAPIPE_TO_IBUG68
    return MEDIAPIPE_TO_IBUG68


def test_coma_folder_errors_name_the_layout(tmp_path, coma_root):
    with pytest.raises(FaceKeyError) as e:
        coma_motions(tmp_path / "none")
    assert e.value.code == "file_missing" and "--coma" in e.value.hint
    (tmp_path / "empty" / "FaceTalk_X" / "grin").mkdir(parents=True)
    with pytest.raises(FaceKeyError) as e:
        coma_motions(tmp_path / "empty")
    assert e.value.code == "bad_argument" and "mouth_open" in e.value.hint
    with pytest.raises(ValueError):
        coma_motions(coma_root[0], part="validation")


def test_training_runs_on_coma_clips(coma_root, tmp_path):
    from training.motion3dgan.train import CONFIGS as GAN_CONFIGS, train as train_gan
    from training.s2d.train import CONFIGS as S2D_CONFIGS, train as train_s2d
    root, _ = coma_root
    gan_cfg = dataclasses.replace(GAN_CONFIGS["tiny"], steps=3)
    res = train_gan(gan_cfg, tmp_path / "gan", coma=root)
    assert res["evaluation"]["heldout"] == "coma:test" and 0.0 <= res["evaluation"]["label_accuracy"] <= 1.0
    res = train_s2d(dataclasses.replace(S2D_CONFIGS["tiny"], steps=3), tmp_path / "s2d", coma=root)
    assert res["evaluation"]["heldout"] == "coma:test" and res["evaluation"]["zero"]["all"] > 0.0


@pytest.mark.slow
def test_coma_clips_on_a_real_flame_head(realdata, tmp_path):
    """CoMA-layout sequences on the real FLAME template (5023 vertices, with ears, neck and eyeballs), moved by
    known ARKit recipes through mesh-level retarget: the clips read back as those recipes."""
    from backend.retarget.mesh_transfer import read_obj, take_to_mesh
    verts, faces = read_obj(realdata / "meshes" / "flame_topology" / "smirk_flame_head_template.obj")
    level = _ramp(1)
    for label in ("mouth_open", "eyebrow"):
        w = np.zeros((len(level), 52), np.float32)
        for name, value in RECIPES[label].items():
            w[:, INDEX[name]] = value * level
        folder = tmp_path / "FaceTalk_T" / label
        folder.mkdir(parents=True)
        for t, v in enumerate(take_to_mesh(w, verts)):
            trimesh.Trimesh(v, faces, process=False).export(folder / f"{label}.{t + 1:06d}.ply")
    clips = coma_motions(tmp_path, frames=10, part="all")
    assert clips.labels.tolist() == [LABELS.index("eyebrow"), LABELS.index("mouth_open")]
    assert np.abs(clips.dense[:, :, NUM_MESH:]).max() < 1e-9         # CoMA's eyes do not turn: irises hold still
    for k, label in enumerate(("eyebrow", "mouth_open")):
        apex = weights_from_dense(clips.dense[k, -1:])[0][0]
        assert max(apex[INDEX[u]] for u in ("eyeLookUpLeft", "eyeLookUpRight", "eyeLookDownLeft",
                                            "eyeLookDownRight")) < 0.1, label
        main = max(RECIPES[label], key=RECIPES[label].get)
        assert apex[INDEX[main]] > 0.6 * RECIPES[label][main], (label, main, apex[INDEX[main]])
        top = {ARKIT_NAMES[i] for i in np.argsort(-apex)[:4]}
        assert main in top, (label, sorted(top))


@pytest.mark.slow
def test_flame_map_on_real_flame_heads(realdata):
    """One map, built on the FLAME template, reads our points on other people's FLAME heads."""
    from backend.retarget.mesh_transfer import read_obj
    v0, f0 = read_obj(realdata / "meshes" / "flame_topology" / "smirk_flame_head_template.obj")
    fmap = flame_map(v0, f0)
    assert fmap.rms_m < 0.0025
    v1, f1 = read_obj(next((realdata / "meshes" / "multirex" / "Neutrals_FLAME").glob("*.obj")))
    own = flame_map(v1, f1)
    gap = np.linalg.norm(fmap.points(v1) - own.points(v1), axis=1)[:NUM_MESH] * 1000
    assert gap.mean() < 4.0        # the topology's correspondence and a fresh fit agree to a few mm
