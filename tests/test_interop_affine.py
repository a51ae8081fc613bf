"""lf.Affine: the element-wise ``y = x * scale + shift`` that scalers become.

Forward against NumPy, parameters (broadcasting, validation, read-only),
relevance (pass-through, conserved; compiled single-probe walk == batch ==
NumPy reference), and the fast path.
"""

import importlib

import numpy as np
import pytest

import lrpfast as lf
from conftest import assert_close
from lrpfast.rules import resolve_rules

explain_mod = importlib.import_module("lrpfast.explain")   # (lf.explain is the function)


def _net(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return lf.Network((2, 3, 2), [
        lf.Affine(rng.normal(size=12), rng.normal(size=12), name="scaler"),
        lf.Dense(7, "relu"), lf.Affine(rng.normal(size=7), rng.normal(size=7)),
        lf.Dense(5, "tanh"), lf.Affine(1.5, -0.25), lf.Dense(3), lf.SoftMax()],
        dtype=dtype, seed=seed)


def test_forward_is_x_times_scale_plus_shift(dtype):
    rng = np.random.default_rng(1)
    scale, shift = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    net = lf.Network((2, 3), [lf.Affine(scale, shift)], dtype=dtype)
    x = rng.normal(size=(4, 2, 3))
    assert_close(net.forward(x), x * scale + shift, dtype, mag=np.abs(x * scale),
                 what="affine forward")
    assert net.layers[0].scale.shape == (6,) and net.layers[0].scale.dtype == dtype


@pytest.mark.parametrize("scale, want", [
    (None, np.ones(12)),
    (2.0, np.full(12, 2.0)),
    (np.arange(12.0), np.arange(12.0)),                          # one per input, flat
    (np.arange(2.0).reshape(2, 1, 1), np.repeat([0.0, 1.0], 6)),  # per channel
])
def test_parameters_broadcast_to_the_input(scale, want):
    net = lf.Network((2, 3, 2), [lf.Affine(scale)], dtype="float64")
    np.testing.assert_array_equal(net.layers[0].scale, want)
    np.testing.assert_array_equal(net.layers[0].shift, np.zeros(12))


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match=r"sc\.scale has shape \(5,\).*12 values"):
        lf.Network((2, 3, 2), [lf.Affine(np.ones(5), name="sc")])
    with pytest.raises(ValueError, match="shift.*NaN"):
        lf.Affine(1.0, [0.0, np.nan])
    with pytest.raises(TypeError, match="scale"):
        lf.Affine("wide")
    net = lf.Network((3,), [lf.Affine()])
    with pytest.raises(ValueError, match=r"Affine\.scale must have shape \(3,\)"):
        net.layers[0].scale = np.ones(4)
    with pytest.raises(ValueError, match="read-only"):
        net.layers[0].shift[0] = 1.0
    before = net.version
    net.layers[0].shift = [1.0, 2.0, 3.0]
    assert net.version != before


@pytest.mark.parametrize("rule, params", [
    ("epsilon", dict(eps=0.05)), ("gamma", dict(gamma=0.25)), ("alpha-beta", {})])
def test_relevance_passes_through_and_all_paths_agree(dtype, rule, params):
    net = _net(dtype)
    X = np.random.default_rng(2).normal(size=(6, 2, 3, 2))
    # The compiled single-probe walk runs (an Affine does not force the Python walk).
    assert explain_mod._plan(net, resolve_rules(rule, net._n_dense, **params), False) \
        is not None
    batch = lf.explain_batch(net, X, rule=rule, **params)
    ref = lf.explain_batch(net, X, rule=rule, backend="numpy", **params)
    for i, x in enumerate(X):
        e = lf.explain(net, x, rule=rule, **params)
        for other in (batch[i], ref[i], lf.explain(net, x, rule=rule, backend="numpy",
                                                   **params)):
            assert other.explained_class == e.explained_class
            assert_close(other.relevance, e.relevance, dtype,
                         mag=np.abs(e.relevance).max(), what="relevance")
        for k in (0, 2, 4):                  # the Affine boundaries
            b = e.boundaries[k]
            assert b.rule == "passthru" and b.sum_in == b.sum_out


def test_affine_first_puts_the_relevance_at_the_raw_feature():
    """Scaling the input and explaining the scaled probe gives the relevance
    that the network with the Affine in front gives the raw probe."""
    rng = np.random.default_rng(3)
    scale, shift = rng.uniform(0.5, 2, size=5), rng.normal(size=5)
    body = lambda: [lf.Dense(6, "relu"), lf.Dense(3)]
    with_affine = lf.Network((5,), [lf.Affine(scale, shift)] + body(), dtype="float64",
                             seed=1)
    plain = lf.Network((5,), body(), dtype="float64", seed=1)
    x = rng.normal(size=5)
    for rule in ("epsilon", "alpha-beta"):
        a = lf.explain(with_affine, x, rule=rule)
        b = lf.explain(plain, x * scale + shift, rule=rule)
        np.testing.assert_allclose(a.relevance, b.relevance, rtol=1e-12, atol=1e-15)


def test_training_updates_scale_and_shift():
    from lrpfast.datasets import blobs
    X, y = blobs(48, 0.3, seed=0)[:2]
    net = lf.Network((1, 6, 6), [lf.Affine(2.0, 0.1), lf.Dense(8, "relu"), lf.Dense(2),
                                 lf.SoftMax()], seed=0)
    before = net.layers[0].scale.copy()
    lf.train(net, X, y, epochs=2, seed=0)
    assert not np.array_equal(net.layers[0].scale, before)
