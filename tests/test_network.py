"""Network: forward against the loops, shapes, dtype, initialisation,
parameters, and explanations that survive save/load unchanged."""

import numpy as np
import pytest

import _loops as L
from conftest import assert_close, randomize_params

import lrpfast as lf


def loop_forward(net, x):
    """Forward of one probe with the loops (float64), and its magnitude."""
    a = np.asarray(x).astype(net.dtype).astype(np.float64).ravel()
    mag = np.abs(a)
    for layer in net.layers:
        a, mag = L._layer_forward(layer, a, mag)
    return a, mag


def every_layer_net(dtype, seed=0):
    net = lf.Network((2, 3, 4), [
        lf.Flatten(), lf.Dense(9, activation="tanh"), lf.Dropout(0.5),
        lf.Dense(8, activation="sigmoid"), lf.LayerNorm(eps=1e-3), lf.Activation("tanh"),
        lf.Dense(7, activation="relu"), lf.ReLU(), lf.Tanh(), lf.Sigmoid(), lf.Identity(),
        lf.Dense(3, activation="linear"), lf.SoftMax()], dtype=dtype, seed=seed)
    return randomize_params(net, seed)


def seed_net(dtype, seed=0):
    return randomize_params(lf.Network(
        (1, 6, 6), [lf.Dense(16, activation="relu"), lf.Dense(12, activation="relu"),
                    lf.Dense(2, activation="linear"), lf.SoftMax()], dtype=dtype,
        seed=seed), seed)


@pytest.mark.parametrize("make", [every_layer_net, seed_net])
def test_forward_matches_loops(make, dtype):
    net = make(dtype)
    rng = np.random.default_rng(7)
    X = rng.normal(size=(5,) + net.input_shape) * 2
    out = net.forward(X)
    assert out.shape == (5,) + net.output_shape and out.dtype == dtype
    for i in range(5):
        exp, mag = loop_forward(net, X[i])
        one = net.forward(X[i])
        assert one.shape == net.output_shape and one.dtype == dtype
        assert_close(one, exp, dtype, mag, f"forward probe {i}")
        assert_close(out[i], exp, dtype, mag, f"forward batch row {i}")
    # a batch of one is a batch
    assert net.forward(X[:1]).shape == (1,) + net.output_shape


def test_dropout_is_the_identity_at_inference(dtype):
    net = lf.Network((5,), [lf.Dropout(0.9)], dtype=dtype, seed=0)
    x = np.arange(5.0)
    for _ in range(3):
        np.testing.assert_array_equal(net.forward(x), x.astype(dtype))


def test_softmax_output_sums_to_one(dtype):
    net = seed_net(dtype)
    out = net.forward(np.random.default_rng(0).normal(size=(4, 1, 6, 6)))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)
    assert (out >= 0).all()


def test_shapes_and_initialisation(dtype):
    net = lf.Network((1, 6, 6), [lf.Dense(16, activation="relu"), lf.Dense(5),
                                 lf.SoftMax()], dtype=dtype, seed=3)
    assert net.input_shape == (1, 6, 6)
    d0, d1 = net.layers[0], net.layers[1]
    assert d0.weight.shape == (36, 16) and d0.bias.shape == (16,)
    assert d1.weight.shape == (16, 5) and d1.bias.shape == (5,)
    for p in (d0.weight, d0.bias, d1.weight, d1.bias):
        assert p.dtype == dtype and p.flags.c_contiguous and np.isfinite(p).all()
    # He for ReLU (std sqrt(2/n_in)); not all equal, not all zero
    assert 0.5 * np.sqrt(2 / 36) < d0.weight.std() < 1.5 * np.sqrt(2 / 36)
    # seeded: same seed, same bytes; other seed, other weights
    again = lf.Network((1, 6, 6), [lf.Dense(16, activation="relu"), lf.Dense(5),
                                   lf.SoftMax()], dtype=dtype, seed=3)
    other = lf.Network((1, 6, 6), [lf.Dense(16, activation="relu"), lf.Dense(5),
                                   lf.SoftMax()], dtype=dtype, seed=4)
    assert again.layers[0].weight.tobytes() == d0.weight.tobytes()
    assert other.layers[0].weight.tobytes() != d0.weight.tobytes()


def test_tabular_input_shape_accepts_an_int():
    net = lf.Network(7, [lf.Dense(3)], dtype="float64", seed=0)
    assert net.input_shape == (7,)
    assert net.forward(np.zeros(7)).shape == (3,)


def test_weight_assignment_changes_forward(dtype):
    net = lf.Network((3,), [lf.Dense(2)], dtype=dtype, seed=0)
    net.layers[0].weight = [[1, 0], [0, 1], [1, 1]]
    net.layers[0].bias = [0.5, -0.5]
    np.testing.assert_allclose(net.forward([1.0, 2.0, 3.0]), [4.5, 4.5])


@pytest.mark.parametrize("rule", ["epsilon", "gamma", "alpha-beta"])
def test_explanations_survive_save_and_load(tmp_path, rule, dtype):
    net = every_layer_net(dtype)
    path = tmp_path / "m.npz"
    net.save(path)
    net2 = lf.load(path)
    assert net2.dtype == net.dtype and net2.input_shape == net.input_shape
    X = np.random.default_rng(2).normal(size=(3,) + net.input_shape)
    for backend in ("cython", "numpy"):
        e1 = lf.explain(net, X[0], rule=rule, backend=backend)
        e2 = lf.explain(net2, X[0], rule=rule, backend=backend)
        assert e1.relevance.tobytes() == e2.relevance.tobytes()
        assert [b.label for b in e1.boundaries] == [b.label for b in e2.boundaries]
        b1 = lf.explain_batch(net, X, rule=rule, backend=backend)
        b2 = lf.explain_batch(net2, X, rule=rule, backend=backend)
        assert b1.relevance.tobytes() == b2.relevance.tobytes()


def test_load_refuses_foreign_and_truncated_files(tmp_path):
    net = seed_net("float32")
    good = tmp_path / "good.npz"
    net.save(good)
    raw = good.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError):
        lf.load(tmp_path / "trunc.npz")
    np.savez(tmp_path / "foreign.npz", a=np.zeros(3))
    with pytest.raises(ValueError):
        lf.load(tmp_path / "foreign.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError):
        lf.load(tmp_path / "text.npz")
    with pytest.raises(FileNotFoundError):
        lf.load(tmp_path / "missing.npz")
