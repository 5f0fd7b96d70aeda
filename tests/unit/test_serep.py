"""SEREP: spiral sequences, tiny training end to end, weights check, MultiREX regions."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from backend.facemodel import load_face_model
from backend.protocol.arkit import INDEX
from backend.protocol.errors import FaceKeyError
from backend.retarget.serep import SerepNet, SerepRetarget, load_serep, spiral_indices
from training.serep.data import HELDOUT_SEED, MeshSampler, identity_pool, random_expressions
from training.serep.expressions import IdentityExpressions
from training.serep.multirex import REGION_NAMES, kabsch_align, region_errors, regions
from training.serep.train import CONFIGS, train


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("serep")
    res = train(CONFIGS["tiny"], out)
    return out, res


def test_spiral_starts_at_vertex_and_walks_its_ring():
    m = load_face_model()
    s = spiral_indices(m.neutral, m.triangles, 9)
    assert s.shape == (478, 9)
    assert np.array_equal(s[:, 0], np.arange(478))
    ring = {int(j) for t in m.triangles if 1 in t for j in t} - {1}
    assert set(s[1, 1:1 + len(ring)].tolist()) == ring
    assert all(len(set(row)) == 9 for row in s.tolist())


def test_sampler_pairs_share_expression_and_identity():
    m = load_face_model()
    ids = identity_pool(5, HELDOUT_SEED)
    b = MeshSampler(ids, seed=3).sample(4)
    faces = IdentityExpressions()
    # src and other are actor a, tgt is actor b: each with its own transferred units
    for i in range(4):
        ia = next(k for k in range(5) if np.allclose(m.vertices(np.zeros(52), ids[k]), b.neutral_a[i], atol=1e-7))
        ib = next(k for k in range(5) if np.allclose(m.vertices(np.zeros(52), ids[k]), b.neutral_b[i], atol=1e-7))
        np.testing.assert_allclose(b.src[i], faces.vertices(b.weights[i:i + 1], ids[ia:ia + 1])[0], atol=1e-6)
        np.testing.assert_allclose(b.tgt[i], faces.vertices(b.weights[i:i + 1], ids[ib:ib + 1])[0], atol=1e-6)
    # the retarget source is the canonical face making the same expression (as in the product)
    np.testing.assert_allclose(b.canonical, m.vertices(b.weights), atol=1e-6)


def test_random_expressions_never_hold_both_units_of_a_contradictory_pair():
    """jawLeft/jawRight and mouthLeft/mouthRight are mirrors and exclusive pairs: a unit drawn with its
    mirror gave ~8.5 % of training samples both sides at once, an expression no capture reads."""
    from backend.protocol.arkit import EXCLUSIVE_PAIRS
    from training.serep.data import random_expressions
    w = random_expressions(np.random.default_rng(0), 20000)
    for a, b in EXCLUSIVE_PAIRS:
        assert not np.any((w[:, a] > 0) & (w[:, b] > 0)), (a, b)
    assert (w > 0).sum(1).max() >= 4 and (w.sum(1) == 0).mean() > 0.05     # still sparse mixes and neutrals


def test_transferred_expressions_depend_on_the_face():
    """Deformation transfer: the canonical face gets the canonical units exactly, a face scaled by s
    moves s times as far, expressions blend linearly, and two actors move differently."""
    m = load_face_model()
    faces = IdentityExpressions()
    w = np.zeros((2, 52), np.float32)
    w[0, INDEX["jawOpen"]] = 1.0
    w[1, [INDEX["mouthSmileLeft"], INDEX["eyeBlinkRight"]]] = [0.7, 0.4]
    np.testing.assert_allclose(faces.transfer(np.repeat(m.neutral[None], 2, 0), w),
                               np.tensordot(w, m.unit_deltas, axes=1), atol=1e-7)
    # up to a translation (fixed by the pull toward the plain copy)
    scaled = faces.transfer(np.repeat(1.2 * m.neutral[None], 2, 0), w)[:, :468]
    want = 1.2 * np.tensordot(w, m.unit_deltas, axes=1)[:, :468]
    np.testing.assert_allclose(scaled - scaled.mean(1, keepdims=True), want - want.mean(1, keepdims=True), atol=5e-5)
    ids = identity_pool(2, HELDOUT_SEED)
    both = faces.vertices(w.sum(0, keepdims=True), ids[:1]) - m.vertices(np.zeros(52), ids[0])
    apart = faces.vertices(w, np.repeat(ids[:1], 2, 0)) - m.vertices(np.zeros(52), ids[0])
    np.testing.assert_allclose(both[0], apart.sum(0), atol=1e-6)
    jaw = [faces.vertices(w[:1], ids[k:k + 1])[0] - m.vertices(np.zeros(52), ids[k]) for k in range(2)]
    assert np.abs(jaw[0] - jaw[1]).max() > 1e-3            # millimetres apart on two actors
    assert np.abs(jaw[0] - m.unit_deltas[INDEX["jawOpen"]]).max() > 1e-3


def test_tiny_training_decreases_loss_and_loads_in_product(tiny_run):
    out, res = tiny_run
    h = res["history"]
    assert np.mean(h[-3:]) < 0.75 * h[0]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["net"]["exp_dim"] == CONFIGS["tiny"].net.exp_dim and cfg["history"] == h
    net = load_serep(out)
    r = SerepRetarget(net)
    w = np.zeros((3, 52), np.float32)
    w[1, INDEX["jawOpen"]] = 1.0
    codes = r.expression_code(w)
    assert codes.shape == (3, CONFIGS["tiny"].net.exp_dim)
    m = load_face_model()
    neutral = m.vertices(np.zeros(52), identity_pool(1, HELDOUT_SEED)[0])
    d = r.displacements(neutral, w)
    assert d.shape == (3, 478, 3)
    assert np.abs(d[0]).max() < 1e-7 and np.abs(d[2]).max() < 1e-7   # neutral frames: no motion (0.1 um)
    chin = np.linalg.norm(d[1, 152])
    assert chin > 0.005          # the jaw moves down by millimetres, not micrometres
    assert d[1, 152, 1] < 0


def test_untrained_decoder_is_the_plain_copy():
    # residual decoder, last layer at zero: before training a retarget copies the canonical displacement
    torch.manual_seed(0)
    r = SerepRetarget(SerepNet(CONFIGS["tiny"].net).eval())
    m = load_face_model()
    w = np.zeros((2, 52), np.float32)
    w[0, INDEX["jawOpen"]], w[1, INDEX["mouthSmileLeft"]] = 0.8, 0.5
    neutral = m.vertices(np.zeros(52), identity_pool(1, HELDOUT_SEED)[0])
    np.testing.assert_allclose(r.displacements(neutral, w), m.vertices(w) - m.neutral[None], atol=1e-6)


def test_tiny_training_retargets_held_out_actors_better_than_the_copy(tiny_run):
    # the same weights on two held-out actors: SEREP's meshes are nearer each actor's own expression
    # (MultiREX region error) than the canonical displacement copied onto the actor
    m = load_face_model()
    r = SerepRetarget(load_serep(tiny_run[0]))
    w = random_expressions(np.random.default_rng(0), 8, neutral_fraction=0.0)
    serep_err, copy_err = [], []
    for ident in identity_pool(2, HELDOUT_SEED):
        neutral = m.vertices(np.zeros(52), ident)
        truth = IdentityExpressions().vertices(w, np.repeat(ident[None], len(w), 0))
        serep_err.append(region_errors(neutral[None] + r.displacements(neutral, w), truth)["mean"])
        copy_err.append(region_errors(neutral[None] + m.vertices(w) - m.neutral[None], truth)["mean"])
    assert np.mean(serep_err) < 0.9 * np.mean(copy_err)


def test_missing_and_wrong_shape_weights_raise(tiny_run, tmp_path):
    out, _ = tiny_run
    with pytest.raises(FaceKeyError) as e:
        load_serep(tmp_path / "nothing")
    assert e.value.code == "weights_missing" and "training.serep.train" in e.value.hint
    from safetensors.torch import load_file, save_file
    state = load_file(str(out / "serep.safetensors"))
    key = next(k for k in state if k.endswith("fc.weight"))
    state[key] = torch.zeros(3, 3)
    save_file(state, str(tmp_path / "serep.safetensors"))
    (tmp_path / "config.json").write_text((out / "config.json").read_text())
    with pytest.raises(FaceKeyError) as e:
        load_serep(tmp_path)
    assert e.value.code == "weights_invalid" and key in str(e.value)


def test_regions_disjoint_and_kabsch_removes_rigid_motion():
    reg = regions()
    assert set(reg) == set(REGION_NAMES) and all(len(v) >= 15 for v in reg.values())
    allv = np.concatenate(list(reg.values()))
    assert len(allv) == len(set(allv.tolist()))
    m = load_face_model()
    true = m.vertices(np.zeros((1, 52)))
    a = 0.2
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    moved = true @ rot.T + 0.01
    assert region_errors(moved, true)["mean"] < 1e-4
    bumped = true.copy()
    bumped[0, reg["mouth"], 2] += 0.001
    err = region_errors(bumped, true)
    assert err["forehead"] < 1e-4 and err["mouth"] > 0.1
    np.testing.assert_allclose(kabsch_align(moved[0], true[0]), true[0], atol=1e-6)


def test_serep_take_on_flame_head(tiny_run, realdata):
    from backend.retarget.mesh_transfer import FaceTransfer, fit_face, read_obj, take_to_mesh
    verts, _ = read_obj(realdata / "meshes/flame_topology/smirk_flame_head_template.obj")
    tr = FaceTransfer(fit_face(verts), verts)
    r = SerepRetarget(load_serep(tiny_run[0]))
    w = np.zeros((4, 52), np.float32)
    w[:, INDEX["jawOpen"]] = [0.0, 0.0, 0.5, 1.0]
    out = take_to_mesh(w, verts, r.displacements, transfer=tr)
    assert np.abs(out[:2] - verts[None]).max() < 1e-4              # neutral frames: within 0.1 mm of rest
    chin = np.argmin(np.linalg.norm(verts - tr.fit.points[152], axis=1))
    drop = verts[chin, 1] - out[:, chin, 1]
    assert drop[3] > drop[2] > 0.003                                 # the chin follows the take
