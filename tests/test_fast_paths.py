"""The fast paths (threads, chunks, caches) compute the same as the simple ones."""

import numpy as np
import pytest

import lrpfast as lf
from conftest import kernel_modules

RULES = ["epsilon", "gamma", "alpha-beta", "z-plus", "w-square", "flat", "gamma-generalized"]


def _big_net(dtype, seed=0):
    # 600 x 512 = 307k weights: above the kernels' threshold for threading
    net = lf.Network((600,), [lf.Dense(512, "relu"), lf.Dense(10), lf.SoftMax()],
                     dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    for layer in net.dense_layers:
        layer.bias = rng.normal(0, 0.1, layer.bias.shape)
    return net


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rule", RULES)
def test_single_probe_same_bytes_for_any_thread_count(dtype, rule):
    net = _big_net(dtype)
    x = np.random.default_rng(1).uniform(-0.5, 1, 600)
    ref = lf.explain(net, x, rule, n_threads=1)
    for nt in (2, 3):
        e = lf.explain(net, x, rule, n_threads=nt)
        assert e.relevance.tobytes() == ref.relevance.tobytes()
        assert e.stats.tobytes() == ref.stats.tobytes()


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("absorb", [False, True])
def test_batch_chunks_and_threads_agree(rule, absorb):
    net = _big_net("float64")
    X = np.random.default_rng(2).uniform(-0.5, 1, (37, 600))   # signed inputs too
    ref = lf.explain_batch(net, X, rule, absorb_bias=absorb, backend="numpy")
    for kw in ({}, {"chunk_size": 1}, {"chunk_size": 8}, {"n_threads": 1}):
        b = lf.explain_batch(net, X, rule, absorb_bias=absorb, **kw)
        np.testing.assert_allclose(b.relevance, ref.relevance, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b.stats, ref.stats, rtol=1e-10, atol=1e-12)
        assert (b.explained_class == ref.explained_class).all()


@pytest.mark.parametrize("rule", RULES)
def test_assigning_a_weight_invalidates_the_caches(rule):
    net = _big_net("float64")
    X = np.random.default_rng(3).uniform(0, 1, (4, 600))
    lf.explain(net, X[0], rule)           # builds the plan
    lf.explain_batch(net, X, rule)        # builds the derived weights
    W = np.random.default_rng(4).normal(0, 0.05, (600, 512))
    net.layers[0].weight = W
    fresh = _big_net("float64")
    fresh.layers[0].weight = W
    np.testing.assert_array_equal(lf.explain(net, X[0], rule).relevance,
                                  lf.explain(fresh, X[0], rule).relevance)
    np.testing.assert_array_equal(lf.explain_batch(net, X, rule).relevance,
                                  lf.explain_batch(fresh, X, rule).relevance)


def test_weights_are_read_only_views():
    net = _big_net("float32")
    with pytest.raises(ValueError, match="read-only"):
        net.layers[0].weight[0, 0] = 1.0


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_bad_thread_and_chunk_counts(bad):
    net = _big_net("float32")
    X = np.zeros((2, 600))
    err = TypeError if not isinstance(bad, int) else ValueError
    with pytest.raises(err, match="n_threads"):
        lf.explain_batch(net, X, n_threads=bad)
    with pytest.raises(err, match="chunk_size"):
        lf.explain_batch(net, X, chunk_size=bad)
    with pytest.raises(err, match="n_threads"):
        lf.explain(net, X[0], n_threads=bad)


@pytest.mark.parametrize("module", kernel_modules(), ids=lambda m: m.__name__)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("absorb", [False, True])
def test_every_kernel_build_matches_the_reference(module, dtype, rule, absorb, monkeypatch):
    """The baseline and the AVX2/FMA builds both equal reference.py (own tolerance)."""
    import importlib
    explain_mod = importlib.import_module("lrpfast.explain")
    monkeypatch.setattr(explain_mod, "_kernels", module)
    monkeypatch.setattr(importlib.import_module("lrpfast._batch"), "_kernels", module)
    net = _big_net(dtype, seed=5)
    X = np.random.default_rng(6).uniform(-0.5, 1, (3, 600))
    ref = lf.explain_batch(net, X, rule, absorb_bias=absorb, backend="numpy")
    # float32: sums of 600 signed terms, errors relative to the largest |R|
    tol = dict(rtol=1e-4, atol=2e-4) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    scale = np.abs(ref.relevance).max()
    for i in range(3):
        e = lf.explain(net, X[i], rule, absorb_bias=absorb)
        np.testing.assert_allclose(e.relevance / scale, ref.relevance[i] / scale, **tol)
    b = lf.explain_batch(net, X, rule, absorb_bias=absorb)
    np.testing.assert_allclose(b.relevance / scale, ref.relevance / scale, **tol)


def test_kernel_choice_is_validated():
    from lrpfast import _dispatch
    assert _dispatch.select("baseline") is _dispatch.baseline
    with pytest.raises(ValueError, match="LRPFAST_KERNELS"):
        _dispatch.select("sse9")
