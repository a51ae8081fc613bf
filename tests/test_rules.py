"""The rule catalogue of DESIGN §3b: z-plus, w-square, flat, z-box, generalised gamma,
the alpha-beta stabiliser, named composites, output_relevance and layers=.

Expected values come from the per-(i, j) loops of ``_loops`` (written from the
design text) or from properties (conservation, linearity, determinism); none
is produced by the code under test.
"""

import itertools
import warnings
import zlib

import numpy as np
import pytest

import _loops as L
from conftest import assert_close, kernel_modules, make_dense_data, randomize_params
from test_explain import check_explanation, image_net, mixed_net, norm_net

import lrpfast as lf
from lrpfast import _dispatch, reference

NETS = {"image": image_net, "mixed": mixed_net, "norm": norm_net}


def _rng(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


# --------------------------------------------------------------------------
# One dense boundary: kernel and reference against the loops
# --------------------------------------------------------------------------

SHAPES = ((1, 1), (6, 4), (40, 23), (17, 40))
LAYER_RULES = {
    "z-plus": (lf.ZPlus(), ("z-plus",)),
    "w-square": (lf.WSquare(), ("w-square", 1e-6)),
    "w-square-0.3": (lf.WSquare(eps=0.3), ("w-square", 0.3)),
    "flat": (lf.Flat(), ("flat",)),
    "gamma-generalized": (lf.GeneralizedGamma(), ("gamma-generalized", 0.25, 1e-2)),
    "gamma-generalized-1": (lf.GeneralizedGamma(gamma=1.0, eps=1e-4),
                            ("gamma-generalized", 1.0, 1e-4)),
    "alpha-beta-eps": (lf.AlphaBeta(alpha=2.0, eps=1e-3), ("alpha-beta", 2.0, 1e-3)),
    "alpha-beta-1.5-eps": (lf.AlphaBeta(alpha=1.5, eps=0.1), ("alpha-beta", 1.5, 0.1)),
    "z-box": (None, None),
}
LAYER_CASES = list(itertools.product(LAYER_RULES, (False, True), ("zero", "signed"),
                                     ("signed", "nonneg"), SHAPES))


def _layer_case(name, absorb, bias, inputs, shape, dtype):
    n, m = shape
    rng = _rng("layer", name, absorb, bias, inputs, shape)
    a, W, b, R = make_dense_data(rng, n, m, dtype, inputs=inputs, bias=bias,
                                 zero_column=m >= 4)
    rule, spec = LAYER_RULES[name]
    if name == "z-box":     # per-feature bounds around the probe
        low = (np.minimum(a, 0) - rng.uniform(0.1, 1, n)).astype(dtype)
        high = (np.maximum(a, 0) + rng.uniform(0.1, 1, n)).astype(dtype)
        rule = lf.ZBox(low.reshape(n), high.reshape(n), eps=1e-6)
        spec = ("z-box", low, high, 1e-6)
    return a, W, b, R, rule, spec


def _check_layer(R_in, shares, exp, R, dtype, what):
    assert_close(R_in, exp.R_in, dtype, exp.mag_in, f"{what} R_in")
    bias_s, stab_s, deg_s, n_deg = (float(v) for v in shares)
    assert_close(bias_s, exp.bias_share, dtype, exp.share_mag, f"{what} bias_share")
    assert_close(stab_s, exp.stabilizer_share, dtype, exp.share_mag, f"{what} stab")
    assert_close(deg_s, exp.degenerate_share, dtype, exp.share_mag, f"{what} degenerate")
    assert n_deg == exp.degenerate, f"{what}: {n_deg} degenerate, expected {exp.degenerate}"
    lost = float(np.sum(np.asarray(R, np.float64))) - float(np.sum(np.asarray(R_in,
                                                                          np.float64)))
    assert_close(bias_s + stab_s + deg_s, lost, dtype, exp.share_mag,
                 f"{what} shares add up")


class _FakeLayer:
    """What the batch functions read from a Dense layer."""

    def __init__(self, W, b):
        self.weight, self.bias = W, b
        self.n_in, self.n_out = W.shape


@pytest.mark.parametrize("module", kernel_modules(), ids=lambda m: m.__name__)
@pytest.mark.parametrize("name,absorb,bias,inputs,shape", LAYER_CASES,
                         ids=[f"{c[0]}-absorb{c[1]}-bias_{c[2]}-{c[3]}-{c[4][0]}x{c[4][1]}"
                              for c in LAYER_CASES])
def test_layer_kernel_batch_and_reference_match_loops(module, dtype, name, absorb, bias,
                                                      inputs, shape):
    a, W, b, R, rule, spec = _layer_case(name, absorb, bias, inputs, shape, dtype)
    exp = L.apply_rule(spec, a, W, b, R, absorb)
    before = [v.tobytes() for v in (a, W, b, R)]
    layer = _FakeLayer(W, b)
    # the single-probe kernel
    code, p1, p2, p3 = rule.kernel_args()
    aux = rule.plan_aux(layer, absorb)
    R_in = np.full(shape[0], 123.0, dtype=dtype)
    z = np.ascontiguousarray(a @ W + b)
    shares = module.dense_backward(a, W, b, z, R, code, p1, p2, absorb, R_in, p3, *aux)
    _check_layer(R_in, shares, exp, R, dtype, f"{module.__name__}.dense_backward")
    # the batch path (rows: the probe twice, so a row of the batch is the probe)
    A2, R2 = np.stack([a, a]), np.stack([R, R])
    import lrpfast._batch as batch_mod
    saved = batch_mod._kernels
    batch_mod._kernels = module
    try:
        Rb, sh, tot = rule.batch({}, layer, A2, np.ascontiguousarray(A2 @ W), R2, absorb)
    finally:
        batch_mod._kernels = saved
    assert Rb.dtype == np.dtype(dtype)
    _check_layer(Rb[1], sh[1], exp, R, dtype, "batch")
    np.testing.assert_allclose(tot, Rb.astype(np.float64).sum(axis=1), rtol=1e-6,
                               atol=1e-30)
    # the NumPy reference
    Rr, shr = reference.dense_rule(rule, A2, W, b, R2, absorb)
    assert Rr.dtype == np.dtype(dtype)
    _check_layer(Rr[0], shr[0], exp, R, dtype, "reference")
    assert [v.tobytes() for v in (a, W, b, R)] == before, "inputs were written"


def test_loops_hand_examples():
    # z-plus: c = [2, -1, 3] -> P = 5, R = 4: [8/5, 0, 12/5]
    res = L.z_plus([1.0, 1.0, 1.0], [[2.0], [-1.0], [3.0]], [0.0], [4.0])
    np.testing.assert_allclose(res.R_in, [1.6, 0.0, 2.4])
    # w-square: w = [1, 2] -> d = 5; eps 1: R_in = [1, 4] * 6 / 6
    res = L.w_square([9.0, -9.0], [[1.0], [2.0]], [0.0], [6.0], 1.0)
    np.testing.assert_allclose(res.R_in, [1.0, 4.0])
    assert res.stabilizer_share == pytest.approx(1.0)
    # flat: [3, 5] over 4 inputs
    np.testing.assert_allclose(L.flat(None, np.zeros((4, 2)), None, [3.0, 5.0]).R_in, [2.0] * 4)
    # z-box: a = [0.5], w = [2], l = 0, h = 1: c = 1 - 0 = 1
    res = L.z_box([0.5], [[2.0], ], [0.0], [3.0], [0.0], [1.0], 1e-9)
    np.testing.assert_allclose(res.R_in, [3.0], rtol=1e-8)
    # a = [0.5, 0.5], w = [1, -1], l = 0, h = 1: c = [0.5, -0.5 + 1] = [0.5, 0.5]
    res = L.z_box([0.5, 0.5], [[1.0], [-1.0]], [0.0], [2.0], [0.0, 0.0], [1.0, 1.0], 1e-12)
    np.testing.assert_allclose(res.R_in, [1.0, 1.0])
    # generalised gamma, z < 0: a = [1, 1], w = [1, -3], b = 0, gamma = 1:
    # n = [1 + 0, -3 - 3] = [1, -6], D = -5
    res = L.gamma_generalized([1.0, 1.0], [[1.0], [-3.0]], [0.0], [5.0], 1.0, 1e-12)
    np.testing.assert_allclose(res.R_in, [-1.0, 6.0])
    # z = 0: degenerate
    res = L.gamma_generalized([1.0, 1.0], [[1.0], [-1.0]], [0.0], [5.0], 1.0, 1e-2)
    assert res.degenerate == 1 and res.degenerate_share == 5.0


# --------------------------------------------------------------------------
# Whole networks: explain, explain_batch, backend="numpy" against the walk
# --------------------------------------------------------------------------

def _box(net, rng):
    """Per-feature bounds around probes of net (signed probes inside them)."""
    low = -1.5 - rng.uniform(0, 1, net.input_shape)
    high = 1.5 + rng.uniform(0, 1, net.input_shape)
    return low, high


def net_variants(nd, low, high):
    """(id, explain kwargs, loop specs) for nets with ``nd`` Dense layers."""
    lo, hi = low.ravel(), high.ravel()
    mid = lambda spec: [spec] * (nd - 2)
    return [
        ("z-plus", dict(rule="z-plus"), ("z-plus",)),
        ("w-square", dict(rule="w-square"), ("w-square", 1e-6)),
        ("w-square-obj", dict(rule=lf.WSquare(eps=0.2)), ("w-square", 0.2)),
        ("flat", dict(rule="flat"), ("flat",)),
        ("gamma-generalized", dict(rule="gamma-generalized"), ("gamma-generalized", 0.25, 1e-2)),
        ("gamma-generalized-kw", dict(rule="gamma-generalized", gamma=0.7, eps=1e-3),
         ("gamma-generalized", 0.7, 1e-3)),
        ("alpha-beta-eps", dict(rule=lf.AlphaBeta(alpha=2.0, eps=1e-2)),
         ("alpha-beta", 2.0, 1e-2)),
        ("z-box-list", dict(rule=[lf.ZBox(low, high)] + ["epsilon"] * (nd - 1)),
         [("z-box", lo, hi, 1e-6)] + [("epsilon", 1e-2)] * (nd - 1)),
        ("z-box-scalar", dict(rule=[lf.ZBox(-3.0, 3.0, eps=1e-3)] + ["w-square"] * (nd - 1)),
         [("z-box", np.full(lo.size, -3.0), np.full(lo.size, 3.0), 1e-3)]
         + [("w-square", 1e-6)] * (nd - 1)),
        ("epsilon-plus", dict(rule="epsilon-plus", eps=0.05),
         [("z-plus",)] + mid(("z-plus",)) + [("epsilon", 0.05)]),
        ("epsilon-plus-flat", dict(rule="epsilon-plus-flat"),
         [("flat",)] + mid(("z-plus",)) + [("epsilon", 1e-2)]),
        ("epsilon-gamma-box", dict(rule=lf.composite("epsilon-gamma-box", low=low, high=high,
                                                     gamma=0.5)),
         [("z-box", lo, hi, 1e-6)] + mid(("gamma-generalized", 0.5, 1e-2))
         + [("epsilon", 1e-2)]),
        ("epsilon-alpha2-beta1", dict(rule="epsilon-alpha2-beta1"),
         [("alpha-beta", 2.0)] + mid(("alpha-beta", 2.0)) + [("epsilon", 1e-2)]),
        ("epsilon-alpha2-beta1-flat", dict(rule="epsilon-alpha2-beta1-flat"),
         [("flat",)] + mid(("alpha-beta", 2.0)) + [("epsilon", 1e-2)]),
        ("epsilon-w-square", dict(rule="epsilon-w-square"),
         [("w-square", 1e-6)] + [("epsilon", 1e-2)] * (nd - 1)),
    ]


VIDS = [v[0] for v in net_variants(3, np.zeros(1), np.ones(1))]


def _setup(netname, vid, dtype):
    net = NETS[netname](dtype)
    rng = _rng("net", netname, vid)
    low, high = _box(net, rng)
    nd = len(net.dense_layers)
    kw, specs = next((v[1], v[2]) for v in net_variants(nd, low, high) if v[0] == vid)
    X = rng.uniform(-1.5, 1.5, (3,) + net.input_shape)
    X[1] = np.abs(X[1])
    return net, kw, specs, X


@pytest.mark.parametrize("absorb", [False, True], ids=["default", "absorb"])
@pytest.mark.parametrize("vid", VIDS)
@pytest.mark.parametrize("netname", list(NETS))
def test_explain_new_rules_match_loops(netname, vid, absorb, dtype):
    net, kw, specs, X = _setup(netname, vid, dtype)
    exps = [L.walk(net, x, specs, absorb_bias=absorb) for x in X]
    for backend in ("cython", "numpy"):
        for i, x in enumerate(X):
            e = lf.explain(net, x, absorb_bias=absorb, backend=backend, **kw)
            check_explanation(e, exps[i], net, what=f"{backend} probe {i}")
        b = lf.explain_batch(net, X, absorb_bias=absorb, backend=backend, **kw)
        for i in range(len(X)):
            check_explanation(b[i], exps[i], net, what=f"{backend} batch row {i}")


@pytest.mark.parametrize("vid", VIDS)
def test_float32_agrees_with_float64(vid):
    net64, kw, _, X = _setup("image", vid, "float64")
    net32 = NETS["image"]("float32")
    for l32, l64 in zip(net32.dense_layers, net64.dense_layers):
        l32.weight, l32.bias = l64.weight, l64.bias
    for l64, l32 in zip(net64.dense_layers, net32.dense_layers):
        l64.weight, l64.bias = l32.weight.astype(np.float64), l32.bias.astype(np.float64)
    X32 = X.astype(np.float32)
    b64 = lf.explain_batch(net64, X32.astype(np.float64), **kw)
    b32 = lf.explain_batch(net32, X32, **kw)
    scale = np.abs(b64.relevance).max()
    np.testing.assert_allclose(b32.relevance / scale, b64.relevance / scale, atol=2e-4)
    for i in range(len(X)):
        e32 = lf.explain(net32, X32[i], **kw)
        np.testing.assert_allclose(e32.relevance / scale, b64.relevance[i] / scale, atol=2e-4)


@pytest.mark.parametrize("vid", VIDS)
def test_same_bytes_every_call(vid, dtype):
    net, kw, _, X = _setup("image", vid, dtype)
    first = lf.explain(net, X[0], **kw)
    batch = lf.explain_batch(net, X, **kw)
    for _ in range(2):
        assert lf.explain(net, X[0], **kw).relevance.tobytes() == first.relevance.tobytes()
        assert lf.explain(net, X[0], **kw).stats.tobytes() == first.stats.tobytes()
        assert lf.explain_batch(net, X, **kw).relevance.tobytes() == \
            batch.relevance.tobytes()


def test_existing_rules_keep_their_bytes_with_the_default_alpha_beta_eps(dtype):
    net, _, _, X = _setup("image", "z-plus", dtype)
    for backend in ("cython", "numpy"):
        a = lf.explain(net, X[0], rule="alpha-beta", backend=backend)
        b = lf.explain(net, X[0], rule=lf.AlphaBeta(2.0, eps=0.0), backend=backend)
        assert a.relevance.tobytes() == b.relevance.tobytes()
        assert b.stats[:, 3].tolist() == [0.0] * len(net.layers)   # no stabiliser share


# --------------------------------------------------------------------------
# Conservation properties
# --------------------------------------------------------------------------

def _dense_boundaries(e):
    return [b for b in e.boundaries if b.rule not in ("passthru", "SKIPPED")]


@pytest.mark.parametrize("backend", ["cython", "numpy"])
@pytest.mark.parametrize("netname", list(NETS))
def test_flat_conserves_exactly(netname, backend, dtype):
    net, _, _, X = _setup(netname, "flat", dtype)
    rtol = 1e-5 if dtype == "float32" else 1e-13
    for absorb in (False, True):
        b = lf.explain_batch(net, X, rule="flat", absorb_bias=absorb, backend=backend)
        top = b.stats[:, -1, 1]
        for k in range(len(net.layers)):
            np.testing.assert_allclose(b.stats[:, k, 0], top, rtol=rtol)
        assert not b.stats[:, :, 2:].any()          # no share at all


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_z_plus_conserves_where_no_neuron_is_degenerate(backend, dtype):
    net, _, _, X = _setup("image", "z-plus", dtype)
    X = np.abs(X)
    b = lf.explain_batch(net, X, rule="z-plus", backend=backend)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    for i in range(len(X)):
        e = b[i]
        for bd in _dense_boundaries(e):
            if bd.degenerate == 0:
                assert bd.residual <= rtol * abs(bd.sum_out), (i, bd)
            else:
                assert bd.degenerate_share == pytest.approx(bd.sum_out - bd.sum_in, rel=rtol)


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_w_square_conserves_up_to_its_stabiliser(backend, dtype):
    net, _, _, X = _setup("image", "w-square", dtype)
    rtol = 1e-4 if dtype == "float32" else 1e-12
    for eps in (1e-6, 0.5):
        e = lf.explain(net, X[0], rule=lf.WSquare(eps=eps), backend=backend)
        for bd in _dense_boundaries(e):
            lost = bd.sum_out - bd.sum_in
            assert lost == pytest.approx(bd.stabilizer_share, rel=rtol,
                                         abs=rtol * abs(bd.sum_out))
            assert bd.bias_share == 0.0 and bd.degenerate == 0
            # |share| <= eps * sum_j |R_j| / d_j: small against the relevance
            assert abs(bd.stabilizer_share) <= abs(bd.sum_out) * eps * 50 + 1e-12


def test_z_box_contributions_are_nonnegative_inside_the_bounds():
    net = image_net("float64")
    x = np.random.default_rng(3).uniform(0, 1, net.input_shape)
    W = net.layers[0].weight
    a = x.ravel()
    c = a[:, None] * W - 0.0 * np.maximum(W, 0) - 1.0 * np.minimum(W, 0)
    assert (c >= 0).all()
    # so the relevance of a neuron with R_j >= 0 flows to the inputs with one sign
    e = lf.explain(net, x, rule=[lf.ZBox(0.0, 1.0)] + ["epsilon"] * 2, layers=True)
    R1 = e.layer_relevance[1]
    if (R1 >= 0).all():
        assert (e.relevance >= -1e-12).all()


# --------------------------------------------------------------------------
# Composites
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name,layers", [
    ("epsilon-plus", [lf.ZPlus(), lf.ZPlus(), lf.Epsilon(0.03)]),
    ("epsilon-plus-flat", [lf.Flat(), lf.ZPlus(), lf.Epsilon(0.03)]),
    ("epsilon-alpha2-beta1", [lf.AlphaBeta(2.0), lf.AlphaBeta(2.0), lf.Epsilon(0.03)]),
    ("epsilon-alpha2-beta1-flat", [lf.Flat(), lf.AlphaBeta(2.0), lf.Epsilon(0.03)]),
    ("epsilon-w-square", [lf.WSquare(), lf.Epsilon(0.03), lf.Epsilon(0.03)]),
    ("epsilon-gamma-box", [lf.ZBox(-4.0, 4.0), lf.GeneralizedGamma(0.5, 0.03),
                           lf.Epsilon(0.03)]),
])
def test_composites_equal_their_rule_lists(name, layers, dtype):
    net, _, _, X = _setup("image", "z-plus", dtype)
    box = dict(low=-4.0, high=4.0) if name == "epsilon-gamma-box" else {}
    comp = lf.composite(name, eps=0.03, **box, **({"gamma": 0.5} if box else {}))
    for backend in ("cython", "numpy"):
        want = lf.explain_batch(net, X, rule=layers, backend=backend)
        got = lf.explain_batch(net, X, rule=comp, backend=backend)
        assert got.relevance.tobytes() == want.relevance.tobytes()
        e = lf.explain(net, X[0], rule=comp, backend=backend)
        assert e.relevance.tobytes() == lf.explain(net, X[0], rule=layers,
                                                   backend=backend).relevance.tobytes()
        assert name in e.rule
        if not box:    # by name: explain's keywords reach the composite
            by_name = lf.explain(net, X[0], rule=name, eps=0.03, backend=backend)
            assert by_name.relevance.tobytes() == e.relevance.tobytes()


@pytest.mark.parametrize("name", ["epsilon-plus", "epsilon-alpha2-beta1", "epsilon-w-square"])
def test_composite_by_name_equals_the_object_with_the_same_keywords(name):
    net, _, _, X = _setup("image", "z-plus", "float64")
    for kw in ({}, dict(eps=0.2), dict(eps=0.2, alpha=3.0) if "alpha" in name else {}):
        a = lf.explain(net, X[0], rule=name, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            b = lf.explain(net, X[0], rule=lf.composite(name, **kw))
        assert a.relevance.tobytes() == b.relevance.tobytes()


def test_composite_defaults_are_the_rules_defaults():
    comp = lf.composite("epsilon-w-square")
    assert comp.rules(3) == [lf.WSquare(), lf.Epsilon(), lf.Epsilon()]
    assert lf.composite("epsilon-alpha2-beta1").rules(2) == [lf.AlphaBeta(), lf.Epsilon()]


def test_single_dense_layer_takes_the_first_layer_rule():
    net = lf.Network((5,), [lf.Dense(3), lf.SoftMax()], dtype="float64", seed=1)
    randomize_params(net, 1)
    x = np.random.default_rng(0).uniform(0, 1, 5)
    for name, first in (("epsilon-plus", lf.ZPlus()), ("epsilon-plus-flat", lf.Flat()),
                        ("epsilon-w-square", lf.WSquare())):
        e = lf.explain(net, x, rule=name)
        assert e.relevance.tobytes() == lf.explain(net, x, rule=first).relevance.tobytes()
        assert e.boundaries[0].rule == first.name


# --------------------------------------------------------------------------
# output_relevance and layers=True
# --------------------------------------------------------------------------

@pytest.mark.parametrize("vid", ["z-plus", "gamma-generalized", "epsilon-plus-flat"])
@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_output_relevance_matches_loops(vid, backend, dtype):
    net, kw, specs, X = _setup("image", vid, dtype)
    seeds = _rng("seed", vid).normal(size=(len(X), net.n_outputs))
    b = lf.explain_batch(net, X, output_relevance=seeds, backend=backend, **kw)
    assert b.output_relevance.shape == seeds.shape
    for i in range(len(X)):
        exp = L.walk(net, X[i], specs, seed=seeds[i])
        e = lf.explain(net, X[i], output_relevance=seeds[i], backend=backend, **kw)
        for got in (e, b[i]):
            assert_close(got.relevance, exp.relevance, dtype, exp.mag, "relevance")
            assert_close(got.boundaries[-1].sum_out, seeds[i].astype(dtype).sum(), dtype,
                         np.abs(seeds[i]).sum(), "seed sum")
        np.testing.assert_array_equal(e.output_relevance, seeds[i].astype(dtype))
        assert e.explained_class == int(np.argmax(e.output))


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_contrastive_seed_is_the_difference_of_two_explanations(backend):
    """Epsilon is linear in the top relevance: seeding e_a*z_a - e_b*z_b gives
    the difference of the explanations of class a and class b."""
    net = lf.Network((7,), [lf.Dense(6, "relu"), lf.Dense(4)], dtype="float64", seed=3)
    randomize_params(net, 3)
    x = np.random.default_rng(1).normal(size=7)
    ea = lf.explain(net, x, forced_class=1, backend=backend)
    eb = lf.explain(net, x, forced_class=3, backend=backend)
    r = np.zeros(4)
    r[1], r[3] = ea.logit, -eb.logit
    e = lf.explain(net, x, output_relevance=r, backend=backend)
    np.testing.assert_allclose(e.relevance, ea.relevance - eb.relevance, rtol=1e-12,
                               atol=1e-14)


@pytest.mark.parametrize("vid", ["z-plus", "z-box-list", "epsilon-alpha2-beta1"])
@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_layer_relevance_matches_the_walk(vid, backend, dtype):
    net, kw, specs, X = _setup("mixed", vid, dtype)
    exp = L.walk(net, X[0], specs)
    e = lf.explain(net, X[0], layers=True, backend=backend, **kw)
    b = lf.explain_batch(net, X, layers=True, backend=backend, **kw)
    assert len(e.layer_relevance) == len(net.layers) + 1
    assert e.layer_relevance[0].shape == net.input_shape
    np.testing.assert_array_equal(e.layer_relevance[0], e.relevance)
    for k, bd in enumerate(exp.boundaries):
        for got in (e.layer_relevance[k], b.layer_relevance[k][0]):
            assert_close(np.ravel(got), bd["R_in"], dtype, np.abs(bd["R_in"]) * 10 + 1e-3 *
                         np.abs(bd["R_in"]).max(), f"layer {k}")
    top = np.zeros(net.n_outputs)
    top[e.explained_class] = e.logit
    np.testing.assert_allclose(e.layer_relevance[-1], top, rtol=1e-6)
    assert lf.explain(net, X[0], **kw).layer_relevance is None


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------

def _no_kernel(monkeypatch):
    """Fail the test if any kernel or walk starts."""
    import importlib
    ex = importlib.import_module("lrpfast.explain")   # the module, not the function

    def boom(*a, **k):
        raise AssertionError("a kernel ran before the input was refused")
    monkeypatch.setattr(ex, "_walk", boom)
    monkeypatch.setattr(ex, "_plan", boom)


@pytest.mark.parametrize("low,high,match", [
    (np.nan, 1.0, "low"), (0.0, np.inf, "high"), (1.0, 1.0, "low must be < high"),
    (2.0, 1.0, "low must be < high"), ("a", 1.0, "low"),
    (np.zeros((1, 6, 6)), np.r_[np.ones(35), -1.0].reshape(1, 6, 6), "low must be < high"),
])
def test_bad_bounds(low, high, match):
    with pytest.raises((ValueError, TypeError), match=match):
        lf.ZBox(low, high)


def test_bounds_of_the_wrong_shape(monkeypatch):
    net = image_net("float64")
    x = np.full(net.input_shape, 0.5)
    _no_kernel(monkeypatch)
    with pytest.raises(ValueError, match=r"low must be a scalar or an array of the "
                       r"network's input_shape \(1, 6, 6\), got shape \(36,\)"):
        lf.explain(net, x, rule=[lf.ZBox(np.zeros(36), 1.0), "epsilon", "epsilon"])
    with pytest.raises(ValueError, match="same shape"):
        lf.ZBox(np.zeros(3), np.ones(4))


def test_z_box_only_on_the_first_dense_layer(monkeypatch):
    net = image_net("float64")
    x = np.full(net.input_shape, 0.5)
    _no_kernel(monkeypatch)
    with pytest.raises(ValueError, match=r"rule\[1\].*only to the first Dense layer"):
        lf.explain(net, x, rule=["epsilon", lf.ZBox(0, 1), "epsilon"])
    with pytest.raises(ValueError, match="only to the first Dense layer"):
        lf.explain_batch(net, x[None], rule=lf.ZBox(0, 1))
    with pytest.raises(ValueError, match="z-box.*lrpfast.ZBox"):
        lf.explain(net, x, rule="z-box")
    act_first = lf.Network((4,), [lf.ReLU(), lf.Dense(2)], seed=0)
    with pytest.raises(ValueError, match="changes it"):
        lf.explain(act_first, np.zeros(4), rule=lf.ZBox(-1, 1))


def test_probe_outside_the_bounds_names_the_first_position(monkeypatch):
    net = image_net("float32")
    x = np.full(net.input_shape, 0.5)
    x[0, 2, 3] = 1.5          # channel 0, y = 2, x = 3
    x[0, 4, 1] = -1.0
    rule = [lf.ZBox(0.0, 1.0), "epsilon", "epsilon"]
    _no_kernel(monkeypatch)
    with pytest.raises(ValueError, match=r"position \(0, 3, 2\) has x=1.5 outside \[0, 1\]"):
        lf.explain(net, x, rule=rule)
    X = np.full((3,) + net.input_shape, 0.5)
    X[2, 0, 1, 1] = -0.25
    with pytest.raises(ValueError, match=r"X: .*probe 2, position \(0, 1, 1\)"):
        lf.explain_batch(net, X, rule=rule)
    comp = lf.composite("epsilon-gamma-box", low=0.0, high=1.0)
    with pytest.raises(ValueError, match=r"\(0, 3, 2\)"):
        lf.explain(net, x, rule=comp)
    tab = lf.Network((3,), [lf.Dense(2)], seed=0)
    with pytest.raises(ValueError, match="feature 1"):
        lf.explain(tab, np.array([0.0, 2.0, 0.0]), rule=lf.ZBox([-1, -1, -1], [1, 1, 1]))


def test_unknown_and_incomplete_composites(monkeypatch):
    net = image_net("float64")
    x = np.full(net.input_shape, 0.5)
    with pytest.raises(ValueError, match="composite name must be one of"):
        lf.composite("epsilon-minus")
    with pytest.raises(ValueError, match="rule must be one of .*'epsilon-plus'"):
        lf.explain(net, x, rule="epsilon-minus")
    with pytest.raises(ValueError, match="needs the z-box bounds low and high"):
        lf.composite("epsilon-gamma-box")
    with pytest.raises(ValueError, match="needs the z-box bounds high"):
        lf.composite("epsilon-gamma-box", low=0)
    _no_kernel(monkeypatch)
    with pytest.raises(ValueError, match="needs the z-box bounds"):
        lf.explain(net, x, rule="epsilon-gamma-box")
    with pytest.raises(TypeError, match="takes no low/high"):
        lf.composite("epsilon-plus", low=0, high=1)
    with pytest.raises(ValueError, match=r"rule\[0\]"):
        lf.explain(net, x, rule=["epsilon-plus", "epsilon", "epsilon"])


@pytest.mark.parametrize("make,match", [
    (lambda: lf.WSquare(eps=-1e-3), "eps"), (lambda: lf.WSquare(eps=0), "eps"),
    (lambda: lf.GeneralizedGamma(gamma=-0.1), "gamma"),
    (lambda: lf.GeneralizedGamma(eps=-1.0), "eps"),
    (lambda: lf.AlphaBeta(alpha=2.0, eps=-1e-6), "eps"),
    (lambda: lf.AlphaBeta(alpha=0.5), "alpha"),
    (lambda: lf.ZBox(0, 1, eps=-1), "eps"), (lambda: lf.WSquare(eps="1"), "eps"),
    (lambda: lf.composite("epsilon-plus", eps=-1), "eps"),
    (lambda: lf.composite("epsilon-gamma-box", low=0, high=1, gamma=-1), "gamma"),
    (lambda: lf.composite("epsilon-alpha2-beta1", alpha=0.0), "alpha"),
    (lambda: lf.composite(3), "composite name"),
])
def test_negative_and_wrong_parameters(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_bad_output_relevance_and_layers(monkeypatch):
    net = image_net("float64")
    x = np.full(net.input_shape, 0.5)
    _no_kernel(monkeypatch)
    with pytest.raises(ValueError, match=r"output_relevance must have shape \(2,\)"):
        lf.explain(net, x, output_relevance=np.ones(3))
    with pytest.raises(ValueError, match=r"output_relevance must have shape \(4, 2\)"):
        lf.explain_batch(net, np.stack([x] * 4), output_relevance=np.ones(2))
    with pytest.raises(ValueError, match="output_relevance contains NaN"):
        lf.explain(net, x, output_relevance=[np.nan, 1.0])
    with pytest.raises(TypeError, match="output_relevance"):
        lf.explain(net, x, output_relevance=["a", "b"])
    with pytest.raises(ValueError, match="cannot be combined"):
        lf.explain(net, x, output_relevance=[1.0, 0.0], forced_class=0)
    with pytest.raises(TypeError, match="layers must be True or False"):
        lf.explain(net, x, layers=1)


# --------------------------------------------------------------------------
# Unused parameters warn (issue 10)
# --------------------------------------------------------------------------

def test_unused_parameters_warn_and_defaults_do_not():
    net = image_net("float64")
    x = np.full(net.input_shape, 0.5)
    with pytest.warns(UserWarning, match=r"gamma=5 is not used by the rule\(s\) epsilon"):
        lf.explain(net, x, rule="epsilon", gamma=5)
    with pytest.warns(UserWarning, match=r"eps=0.5 is not used .*gamma-rule"):
        lf.explain(net, x, rule=lf.Gamma(), eps=0.5)
    with pytest.warns(UserWarning, match="eps=0.5 is not used .*w-square"):
        lf.explain_batch(net, x[None], rule="w-square", eps=0.5)
    with pytest.warns(UserWarning, match="alpha=3.0 is not used by composite 'epsilon-plus'"):
        lf.composite("epsilon-plus", alpha=3.0)
    with pytest.warns(UserWarning, match="gamma=1.0 is not used .*epsilon-plus"):
        lf.explain(net, x, rule="epsilon-plus", gamma=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for r in ("epsilon", "gamma", "alpha-beta", "z-plus", "w-square", "flat",
                  "gamma-generalized", "epsilon-plus", lf.ZPlus(), [lf.Flat(), "gamma",
                                                                    "alpha-beta"]):
            lf.explain(net, x, rule=r, eps=1e-2, gamma=0.25, alpha=2.0)  # the demo's call
        lf.explain(net, x, rule="gamma", gamma=5)       # used: no warning
        lf.explain(net, x, rule=["epsilon", "gamma", "alpha-beta"], gamma=1, alpha=3, eps=1)
        lf.composite("epsilon-gamma-box", low=0, high=1, gamma=2.0, eps=0.5)


# --------------------------------------------------------------------------
# Report and CLI
# --------------------------------------------------------------------------

@pytest.mark.parametrize("absorb", [False, True])
@pytest.mark.parametrize("vid", VIDS)
def test_report_verdict_is_healthy_for_every_rule(vid, absorb, dtype):
    from lrpfast.report import check_conservation
    net, kw, _, X = _setup("image", vid, dtype)
    e = lf.explain(net, X[0], absorb_bias=absorb, **kw)
    v = check_conservation(e, absorb_bias=absorb)
    assert v.healthy, v.message


def test_report_flags_a_share_the_rule_does_not_have():
    """flat has no share at all, z-box no bias share, alpha-beta(eps=0) no stabiliser."""
    import dataclasses
    from lrpfast.report import check_conservation
    net, _, _, X = _setup("image", "z-plus", "float64")
    for rule, k, share in (("flat", 1, "stabilizer_share"),
                           ([lf.ZBox(-4.0, 4.0), "epsilon", "epsilon"], 0, "bias_share"),
                           (lf.AlphaBeta(2.0), 1, "stabilizer_share")):
        e = lf.explain(net, X[0], rule=rule, absorb_bias=True)
        b = e.boundaries[k]
        bounds = list(e.boundaries)
        bounds[k] = dataclasses.replace(b, sum_in=b.sum_out - 0.3, residual=0.3,
                                        **{share: 0.3})
        object.__setattr__(e, "boundaries", tuple(bounds))     # cached_property slot
        assert not check_conservation(e, absorb_bias=True).healthy, rule
    # while alpha-beta with a stabiliser may use it
    e = lf.explain(net, X[0], rule=lf.AlphaBeta(2.0, eps=0.5))
    assert any(b.stabilizer_share != 0 for b in e.boundaries)
    assert check_conservation(e).healthy


def test_report_names_the_composite_and_one_rule_per_layer():
    net, _, _, X = _setup("image", "z-plus", "float32")
    text = lf.lrp_report(net, X[1], rule="epsilon-plus-flat", top_k=3)
    lines = text.splitlines()
    assert lines[0] == "LRPReport  epsilon-plus-flat (composite: flat-rule / z-plus-rule / " \
                       "epsilon-rule)"
    assert lines[1] == "  rules      layer 0 Dense(16, relu): flat-rule"
    assert lines[2] == "             layer 1 Dense(12, relu): z-plus-rule"
    assert lines[3] == "             layer 2 Dense(2, linear): epsilon-rule (eps=0.01)"
    table = text.split("(a) ")[1].split("Max conservation")[0]
    for name in ("flat", "z-plus", "epsilon"):
        assert f"  {name} " in table
    assert "Verdict: healthy" in text
    # one rule everywhere: no per-layer lines
    assert lf.lrp_report(net, X[1], rule="w-square").splitlines()[1].startswith("  network")


def test_report_says_seeded_by_the_caller():
    net, _, _, X = _setup("image", "z-plus", "float64")
    text = lf.lrp_report(net, X[0], output_relevance=[1.0, -1.0])
    assert "seeded by the caller (output_relevance, sum R = +0)" in text
    assert "Verdict: healthy" in text


def test_cli_takes_the_new_rules_and_bounds(tmp_path, capsys):
    from lrpfast import cli
    net, _, _, X = _setup("image", "z-plus", "float32")
    model, probe = tmp_path / "m.npz", tmp_path / "p.npy"
    net.save(str(model))
    x = np.clip(X[1], 0, 1)
    np.save(probe, x)
    for rule in ("z-plus", "w-square", "flat", "gamma-generalized", "epsilon-plus",
                 "epsilon-alpha2-beta1-flat", "epsilon-w-square"):
        assert cli.main(["explain", str(model), str(probe), "--rule", rule]) == 0
        out = capsys.readouterr().out
        assert out == lf.lrp_report(net, x, rule=rule)
    assert cli.main(["explain", str(model), str(probe), "--rule", "epsilon-gamma-box",
                     "--low", "0", "--high", "1", "--gamma", "0.5"]) == 0
    out = capsys.readouterr().out
    assert out == lf.lrp_report(net, x, rule=lf.composite("epsilon-gamma-box", low=0.0,
                                                          high=1.0, gamma=0.5))
    assert cli.main(["explain", str(model), str(probe), "--rule", "z-box", "--low", "0",
                     "--high", "1"]) == 0
    out = capsys.readouterr().out
    assert out == lf.lrp_report(net, x, rule=[lf.ZBox(0.0, 1.0), "epsilon", "epsilon"])
    for args, msg in ((["--rule", "z-box"], "needs the z-box bounds --low and --high"),
                      (["--rule", "epsilon-gamma-box", "--low", "0"], "needs the z-box "
                       "bounds --high"),
                      (["--rule", "epsilon", "--low", "0"], "--low apply only to"),
                      (["--rule", "z-box", "--low", "1", "--high", "0"], "--low must be <"),
                      (["--rule", "z-box", "--low", "0.5", "--high", "0.6"], "outside"),
                      (["--rule", "nope"], "invalid choice")):
        assert cli.main(["explain", str(model), str(probe), *args]) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1, err
        assert len(err.rstrip("\n")) <= 100, err


# --------------------------------------------------------------------------
# Hypothesis: the shares add up and match the loops, for every new rule
# --------------------------------------------------------------------------

from hypothesis import assume, given, settings          # noqa: E402
from hypothesis import strategies as st                 # noqa: E402
from test_properties import ELEM, as_dtype, dtypes, mat, sizes, vec   # noqa: E402

NEW_SPECS = st.one_of(
    st.just(("z-plus",)),
    st.sampled_from([1e-6, 0.3]).map(lambda e: ("w-square", e)),
    st.just(("flat",)),
    st.tuples(st.just("gamma-generalized"), st.sampled_from([0.0, 0.25, 2.0]),
              st.sampled_from([1e-2, 0.3])),
    st.tuples(st.just("alpha-beta"), st.floats(1.0, 4.0), st.sampled_from([1e-3, 0.5])),
)


def _rule_of(spec):
    return {"z-plus": lambda: lf.ZPlus(), "w-square": lambda: lf.WSquare(spec[1]),
            "flat": lambda: lf.Flat(),
            "gamma-generalized": lambda: lf.GeneralizedGamma(spec[1], spec[2]),
            "alpha-beta": lambda: lf.AlphaBeta(spec[1], eps=spec[2])}[spec[0]]()


def _gg_well_posed(spec, a, W, b, absorb, dtype):
    """Generalised gamma: no z_j or D_j within rounding of 0 (their signs would be noise)."""
    if spec[0] != "gamma-generalized":
        return True
    g = spec[1]
    C = a[:, None] * W
    z = C.sum(0) + b
    zsize = np.abs(C).sum(0) + np.abs(b)
    N = np.where(z > 0, C + g * np.maximum(C, 0), C + g * np.minimum(C, 0))
    bb = np.where(z > 0, b + g * np.maximum(b, 0), b + g * np.minimum(b, 0))
    D = N.sum(0) + (bb if absorb else 0)
    size = np.abs(N).sum(0) + np.abs(bb)
    thr = 1e-4 if dtype == np.float32 else 1e-12
    return bool(np.all(((zsize == 0) | (np.abs(z) > thr * zsize))
                       & ((size == 0) | (np.abs(D) > thr * size))))


@settings(max_examples=80)
@given(n=sizes, m=sizes, data=st.data(), spec=NEW_SPECS, absorb=st.booleans(), dtype=dtypes,
       runner=st.sampled_from(["kernel", "reference", "batch"]))
def test_new_rules_shares_add_up(n, m, data, spec, absorb, dtype, runner):
    a, W, b, R = as_dtype(dtype, data.draw(vec(n)), data.draw(mat(n, m)),
                          data.draw(vec(m)), data.draw(vec(m)))
    assume(_gg_well_posed(spec, a, W, b, absorb, dtype))
    rule = _rule_of(spec)
    exp = L.apply_rule(spec, a, W, b, R, absorb)
    layer = _FakeLayer(W, b)
    if runner == "kernel":
        code, p1, p2, p3 = rule.kernel_args()
        R_in = np.zeros(n, dtype=dtype)
        z = np.ascontiguousarray(a @ W + b)
        shares = _dispatch.kernels.dense_backward(a, W, b, z, R, code, p1, p2, absorb, R_in,
                                                  p3, *rule.plan_aux(layer, absorb))
    elif runner == "reference":
        R_in, shares = rule.reference(a[None], W, b, R[None], absorb)
        R_in, shares = R_in[0], shares[0]
    else:
        R_in, shares, _ = rule.batch({}, layer, a[None], np.ascontiguousarray(a[None] @ W),
                                     R[None], absorb)
        R_in, shares = R_in[0], shares[0]
    _check_layer(R_in, shares, exp, R, dtype, runner)


def test_every_registered_rule_is_known_everywhere():
    """A rule is one class in the registry: report, CLI and names follow from it."""
    from lrpfast import cli, report, rules
    for name, cls in rules.RULES.items():
        assert report._ALLOWED[name] == cls.shares
        assert name in cli._RULE_CHOICES
        assert (name in rules.NAMED) == (cls.by_name is not None)
        assert callable(cls.batch) and callable(cls.reference) and callable(cls.kernel_args)


def test_derived_weights_take_any_builder_and_cache_it():
    from lrpfast import _batch
    net = lf.Network((2,), [lf.Dense(3)], dtype="float64")
    layer = net.layers[0]
    layer.weight = np.arange(6.0).reshape(2, 3) - 2.5
    calls = []

    def cube(W, k):
        calls.append(k)
        return W ** 3 * k

    cache = {}
    first = _batch._derived(cache, layer, cube, 2.0)
    assert np.array_equal(first, (np.arange(6.0).reshape(2, 3) - 2.5) ** 3 * 2)
    assert _batch._derived(cache, layer, cube, 2.0) is first and calls == [2.0]
    _batch._derived(cache, layer, cube, 3.0)
    assert calls == [2.0, 3.0]
    Wp, Wn = _batch._derived(cache, layer, _batch.split_weight)
    assert np.array_equal(Wp - Wn, np.abs(layer.weight))


@pytest.mark.parametrize("absorb_bias", [False, True])
def test_alpha_beta_shares_extend_the_base(absorb_bias):
    base = lf.ZPlus().allowed_shares(absorb_bias)       # bias (if any) + degenerate
    assert lf.AlphaBeta(alpha=2.0).allowed_shares(absorb_bias) == base
    with_eps = lf.AlphaBeta(alpha=2.0, eps=1e-6).allowed_shares(absorb_bias)
    assert with_eps == base[:-1] + ("stabilizer", "degenerate")


@pytest.mark.parametrize("seed", [[True, False], [1.0, True], np.array([True, False])])
def test_output_relevance_refuses_booleans(seed):
    net = lf.Network((4,), [lf.Dense(3, "relu"), lf.Dense(2)], seed=0)
    x = np.ones(4)
    with pytest.raises(TypeError, match="output_relevance.*boolean"):
        lf.explain(net, x, output_relevance=seed)
    with pytest.raises(TypeError, match="output_relevance.*boolean"):
        lf.explain_batch(net, x[None], output_relevance=[seed])


def test_cli_z_box_report_carries_every_rule_parameter(tmp_path, capsys):
    from lrpfast import cli
    net, _, _, X = _setup("image", "z-plus", "float32")
    model, probe = tmp_path / "m.npz", tmp_path / "p.npy"
    net.save(str(model))
    np.save(probe, np.clip(X[1], 0, 1))
    assert cli.main(["explain", str(model), str(probe), "--rule", "z-box", "--low", "0",
                     "--high", "1", "--eps", "0.1"]) == 0
    out = capsys.readouterr().out
    # the header names the rules; the lines below it give each with its parameters
    assert out.startswith("LRPReport  composite: z-box-rule / epsilon-rule / epsilon-rule\n")
    rules = [line for line in out.splitlines()[1:4]]
    assert rules[0].endswith(": z-box-rule (low=0, high=1, eps=1e-06)"), rules
    assert all(line.endswith(": epsilon-rule (eps=0.1)") for line in rules[1:]), rules
