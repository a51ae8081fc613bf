"""Inputs of any rank: networks, explanations, positions and heatmaps per
rank, and importers that read the input shape from the model."""

import numpy as np
import pytest

import lrpfast as lf
from conftest import assert_close
from lrpfast.report import format_position, heatmap_lines, RAMP

SHAPES = [(7,), (4, 4), (5, 3), (2, 3, 2), (2, 2, 3, 2), (1, 2, 1, 2, 3)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_any_rank_explains_alike_on_every_path(shape, dtype):
    n = int(np.prod(shape))
    net = lf.Network(shape, [lf.Affine(np.linspace(0.5, 2, n), 0.1), lf.Dense(6, "relu"),
                             lf.Dense(3), lf.SoftMax()], dtype=dtype, seed=1)
    X = np.random.default_rng(0).normal(size=(4,) + shape)
    out = net.forward(X)
    assert out.shape == (4, 3)
    # One probe and the flat network compute the same thing.
    flat = lf.Network((n,), [lf.Affine(np.linspace(0.5, 2, n), 0.1), lf.Dense(6, "relu"),
                             lf.Dense(3), lf.SoftMax()], dtype=dtype, seed=1)
    assert flat.forward(X.reshape(4, n)).tobytes() == out.tobytes()
    batch = lf.explain_batch(net, X, rule="alpha-beta")
    assert batch.relevance.shape == (4,) + shape
    for i in range(4):
        e = lf.explain(net, X[i], rule="alpha-beta")
        ref = lf.explain(flat, X[i].reshape(-1), rule="alpha-beta", backend="numpy")
        assert e.relevance.shape == shape
        assert_close(e.relevance.reshape(-1), ref.relevance, dtype,
                     mag=np.abs(ref.relevance).max(), what="relevance")
        assert_close(batch.relevance[i], e.relevance, dtype,
                     mag=np.abs(e.relevance).max(), what="batch relevance")


@pytest.mark.parametrize("shape, flat, want", [
    ((7,), 5, "feature 5"),                       # rank 1: as before
    ((2, 3, 4), 13, "(1, 1, 0)"),                 # rank 3: (channel, x, y), x = column
    ((2, 3, 4), 23, "(1, 3, 2)"),
    ((4, 4), 6, "[1, 2]"),                        # other ranks: the NumPy index
    ((5, 3), 14, "[4, 2]"),
    ((2, 2, 3, 2), 17, "[1, 0, 2, 1]"),
])
def test_positions_per_rank(shape, flat, want):
    assert format_position(flat, shape) == want
    if want.startswith("["):                      # probe[i, j, ...] is the position
        probe = np.zeros(shape)
        probe.reshape(-1)[flat] = 1
        assert probe[tuple(int(v) for v in want.strip("[]").split(", "))] == 1


def test_rank_2_heatmap_is_one_map_rows_i_columns_j():
    v = np.zeros((3, 5))
    v[2, 4], v[0, 1] = -9.0, 4.5                  # buckets 9 ('@') and 4.5 -> 4 ('=')
    lines = heatmap_lines(v, (3, 5))              # title, x axis, one line per row
    rows = lines[2:]
    assert len(rows) == 3 and "i = 2" in rows[2]
    cells = [r.split("|")[1] for r in rows]
    signs = [r.split("|")[3] for r in rows]
    assert cells[2][4] == "@" and cells[0][1] == RAMP[4] and cells[1] == " " * 5
    assert signs[2][4] == "-" and signs[0][1] == "+"
    assert "j ->" in lines[1]


def test_rank_1_and_3_maps_are_unchanged_and_other_ranks_are_not_drawn():
    assert len(heatmap_lines(np.arange(6.0), (6,))) == 3      # title, axis, one row
    rank3 = heatmap_lines(np.arange(24.0), (2, 3, 4))
    assert len(rank3) == 2 * (2 + 3) and sum("channel" in l for l in rank3) == 2
    rank4 = heatmap_lines(np.arange(16.0), (2, 2, 2, 2))
    assert len(rank4) == 1 and "no map" in rank4[0] and "rank 4" in rank4[0]


def test_report_for_a_time_window_and_a_rank_4_input():
    net = lf.Network((5, 3), [lf.Dense(4, "relu"), lf.Dense(2)], seed=0)
    x = np.random.default_rng(0).normal(size=(5, 3))
    text = lf.lrp_report(net, x, top_k=3)
    assert "positions [i, j]" in text and "map [i, j]" in text
    e = lf.explain(net, x)
    top = int(np.argmax(np.abs(e.relevance)))
    assert format_position(top, (5, 3)) in text
    net4 = lf.Network((2, 2, 2, 2), [lf.Dense(3)], seed=0)
    text4 = lf.lrp_report(net4, np.ones((2, 2, 2, 2)))
    assert "positions [i, j, k, l]" in text4 and "no map" in text4
    assert all(len(l) <= 100 for l in text4.splitlines() if "no map" in l)


# --------------------------------------------------------------------------
# Importers read the input shape from the model
# --------------------------------------------------------------------------

def test_onnx_reads_a_rank_2_input_shape():
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    W = rng.normal(size=(12, 2)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"], axis=1),
         helper.make_node("MatMul", ["f", "W"], ["y"])], "window",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        [numpy_helper.from_array(W, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    net = lf.from_onnx(model)
    assert net.input_shape == (4, 3)
    X = rng.normal(size=(5, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(net.forward(X), X.reshape(5, -1) @ W, rtol=1e-6)
    with pytest.raises(ValueError, match="input_shape"):
        lf.from_onnx(model, input_shape=(13,))


def test_torch_takes_a_rank_2_probe_it_flattens_itself():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2)).eval()
    net = lf.from_torch(m, input_shape=(4, 3))
    X = np.random.default_rng(1).normal(size=(5, 4, 3)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(net.forward(X), m(torch.as_tensor(X)).numpy(),
                                   rtol=1e-5, atol=1e-6)
