"""explain() and explain_batch() through both backends, against the loops.

The expected values all come from ``_loops.walk`` (float64 per-(i, j) loops
written from DESIGN section 3) or from hand construction; none is produced by
lrpfast.
"""

import numpy as np
import pytest

import _loops as L
from conftest import TOL, assert_close, param_bytes, randomize_params

import lrpfast as lf

BACKENDS = ("cython", "numpy")


# --------------------------------------------------------------------------
# Networks and rule variants
# --------------------------------------------------------------------------

def image_net(dtype, seed=0):
    """The seed's 6x6 network with non-zero biases."""
    net = lf.Network((1, 6, 6), [lf.Dense(16, activation="relu"),
                                 lf.Dense(12, activation="relu"),
                                 lf.Dense(2, activation="linear"), lf.SoftMax()],
                     dtype=dtype, seed=seed)
    return randomize_params(net, seed)


def mixed_net(dtype, seed=1):
    """Every pass-through layer kind, every Dense activation, no SoftMax."""
    net = lf.Network((2, 3, 4), [
        lf.Flatten(), lf.Dense(9, activation="tanh"), lf.Dropout(0.25),
        lf.Dense(8, activation="sigmoid"), lf.Sigmoid(), lf.Dense(7, activation="relu"),
        lf.ReLU(), lf.Identity(), lf.Tanh(), lf.Dense(4, activation="linear")],
        dtype=dtype, seed=seed)
    return randomize_params(net, seed)


def norm_net(dtype, seed=2):
    """LayerNorm in the middle, SoftMax on top: both SKIPPED."""
    net = lf.Network((8,), [lf.Dense(6, activation="relu"), lf.LayerNorm(),
                            lf.Dense(5, activation="tanh"), lf.Dense(3), lf.SoftMax()],
                     dtype=dtype, seed=seed)
    return randomize_params(net, seed)


NETS = {"image": image_net, "mixed": mixed_net, "norm": norm_net}


def n_dense(net):
    return sum(isinstance(l, lf.Dense) for l in net.layers)


def variants(nd):
    """(id, explain kwargs, loop specs) for a net with ``nd`` Dense layers."""
    comp = [lf.Gamma(gamma=0.5, eps=1e-3)] + ["alpha-beta"] * (nd - 2) + [lf.Epsilon(eps=0.1)]
    comp_specs = [("gamma", 0.5, 1e-3)] + [("alpha-beta", 3.0)] * (nd - 2) + [("epsilon", 0.1)]
    comp2 = ["epsilon"] * (nd - 1) + [lf.AlphaBeta(alpha=1.0)]
    comp2_specs = [("epsilon", 0.2)] * (nd - 1) + [("alpha-beta", 1.0)]
    return [
        ("epsilon", dict(rule="epsilon"), ("epsilon", 1e-2)),
        ("epsilon-0.3", dict(rule="epsilon", eps=0.3), ("epsilon", 0.3)),
        ("gamma", dict(rule="gamma"), ("gamma", 0.25, 1e-2)),
        ("gamma-1-eps-1e-3", dict(rule="gamma", gamma=1.0, eps=1e-3), ("gamma", 1.0, 1e-3)),
        ("alpha-beta", dict(rule="alpha-beta"), ("alpha-beta", 2.0)),
        ("alpha-beta-1", dict(rule="alpha-beta", alpha=1.0), ("alpha-beta", 1.0)),
        ("obj-epsilon", dict(rule=lf.Epsilon(eps=0.05)), ("epsilon", 0.05)),
        ("obj-gamma", dict(rule=lf.Gamma(gamma=0.5, eps=0.02)), ("gamma", 0.5, 0.02)),
        ("obj-alpha-beta", dict(rule=lf.AlphaBeta(alpha=1.5)), ("alpha-beta", 1.5)),
        ("composite", dict(rule=comp, alpha=3.0), comp_specs),
        ("composite-names", dict(rule=comp2, eps=0.2), comp2_specs),
    ]


VARIANT_IDS = [v[0] for v in variants(3)]


def get_variant(net, vid):
    for v in variants(n_dense(net)):
        if v[0] == vid:
            return v[1], v[2]
    raise KeyError(vid)


def probe(net, rng, kind="signed"):
    x = rng.normal(size=net.input_shape)
    return np.abs(x) if kind == "nonneg" else x


# --------------------------------------------------------------------------
# Checking one explanation against the loop walk
# --------------------------------------------------------------------------

def check_explanation(e, exp, net, forced=None, what="explain"):
    dtype = net.dtype
    assert isinstance(e, lf.Explanation)
    assert e.relevance.shape == net.input_shape
    assert e.relevance.dtype == dtype
    assert isinstance(e.explained_class, int) and e.explained_class == exp.explained_class
    assert e.forced is (forced is not None)
    assert isinstance(e.logit, float)
    assert_close(e.logit, exp.logit, dtype, exp.logit_mag, f"{what} logit")
    assert_close(np.reshape(e.output, -1), exp.output, dtype, exp.output_mag,
                 f"{what} output")
    assert_close(e.relevance, exp.relevance, dtype, exp.mag, f"{what} relevance")
    assert isinstance(e.rule, str) and e.rule
    check_boundaries(e.boundaries, exp.boundaries, net, what)
    assert e.max_residual == max(b.residual for b in e.boundaries)
    assert_close(e.max_residual, exp.max_residual, dtype,
                 max(b["sum_in_mag"] + b["sum_out_mag"] for b in exp.boundaries),
                 f"{what} max_residual")


def check_boundaries(bounds, exp_bounds, net, what):
    dtype = net.dtype
    assert isinstance(bounds, tuple) and len(bounds) == len(net.layers)
    for k, (b, x) in enumerate(zip(bounds, exp_bounds)):
        tag = f"{what} boundary {k} ({type(net.layers[k]).__name__})"
        assert b.index == k, tag
        assert b.name == net.layers[k].name, tag
        assert isinstance(b.layer, str) and type(net.layers[k]).__name__ in b.layer, tag
        assert b.rule == x["rule"], f"{tag}: rule {b.rule!r}, expected {x['rule']!r}"
        if x["rule"] == "SKIPPED":
            if x["reason"] is not None:
                assert b.reason == x["reason"], tag
                assert b.label == f"SKIPPED ({x['reason']})", tag
            else:  # composite of several rule kinds
                assert b.reason.startswith("no ") and b.reason.endswith(" rule"), tag
                assert b.label == f"SKIPPED ({b.reason})", tag
        else:
            assert b.reason is None, tag
            assert b.label == x["rule"], tag
        assert_close(b.sum_out, x["sum_out"], dtype, x["sum_out_mag"], f"{tag} sum_out")
        assert_close(b.sum_in, x["sum_in"], dtype, x["sum_in_mag"], f"{tag} sum_in")
        assert b.residual == pytest.approx(abs(b.sum_in - b.sum_out), rel=1e-12,
                                           abs=1e-300), tag
        assert_close(b.residual, x["residual"], dtype, x["sum_in_mag"] + x["sum_out_mag"],
                     f"{tag} residual")
        assert b.degenerate == x["degenerate"], \
            f"{tag}: {b.degenerate} degenerate, expected {x['degenerate']}"
        if x["rule"] in ("passthru", "SKIPPED"):
            # relevance passes unchanged
            assert b.sum_in == b.sum_out, tag
            assert b.residual == 0.0, tag
            assert b.bias_share == b.stabilizer_share == b.degenerate_share == 0.0, tag
            continue
        smag = x["share_mag"]
        assert_close(b.bias_share, x["bias_share"], dtype, smag, f"{tag} bias_share")
        assert_close(b.stabilizer_share, x["stabilizer_share"], dtype, smag,
                     f"{tag} stabilizer_share")
        assert_close(b.degenerate_share, x["degenerate_share"], dtype, smag,
                     f"{tag} degenerate_share")
        assert_close(b.bias_share + b.stabilizer_share + b.degenerate_share,
                     b.sum_out - b.sum_in, dtype, smag, f"{tag} shares add up")


# --------------------------------------------------------------------------
# explain against the loops
# --------------------------------------------------------------------------

@pytest.mark.parametrize("absorb", [False, True], ids=["default", "absorb"])
@pytest.mark.parametrize("vid", VARIANT_IDS)
@pytest.mark.parametrize("netname", list(NETS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_explain_matches_loops(backend, netname, vid, absorb, dtype, rng):
    net = NETS[netname](dtype)
    kwargs, specs = get_variant(net, vid)
    for kind in ("signed", "nonneg"):
        x = probe(net, rng, kind)
        e = lf.explain(net, x, absorb_bias=absorb, backend=backend, **kwargs)
        exp = L.walk(net, x, specs, absorb_bias=absorb)
        check_explanation(e, exp, net, what=f"{backend}/{kind}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("vid", ["epsilon", "gamma", "alpha-beta", "composite"])
def test_explain_forced_class(backend, vid, dtype, rng):
    net = norm_net(dtype)
    kwargs, specs = get_variant(net, vid)
    x = probe(net, rng)
    free = L.walk(net, x, specs)
    for c in range(3):
        e = lf.explain(net, x, forced_class=c, backend=backend, **kwargs)
        exp = L.walk(net, x, specs, forced_class=c)
        assert exp.explained_class == c
        check_explanation(e, exp, net, forced=c, what=f"forced {c}")
    # numpy integers are ints too
    e = lf.explain(net, x, forced_class=np.int64(free.explained_class), backend=backend,
                   **kwargs)
    assert e.explained_class == free.explained_class and e.forced is True


@pytest.mark.parametrize("backend", BACKENDS)
def test_seed_is_the_logit_before_a_trailing_softmax(backend, dtype, rng):
    net = image_net(dtype)
    x = probe(net, rng)
    e = lf.explain(net, x, backend=backend)
    # logits by hand: the output of the last Dense (linear), softmax on top
    a = np.asarray(x, np.float64).ravel()
    for layer in net.layers[:3]:
        a = a @ layer.weight.astype(np.float64) + layer.bias.astype(np.float64)
        if layer.activation == "relu":
            a = np.maximum(a, 0)
    c = int(np.argmax(a))
    assert e.explained_class == c
    assert e.logit == pytest.approx(a[c], rel=10 * TOL[net.dtype], abs=1e-6)
    soft = np.exp(a - a.max()) / np.exp(a - a.max()).sum()
    np.testing.assert_allclose(e.output, soft, rtol=10 * TOL[net.dtype], atol=1e-6)
    top = e.boundaries[-1]
    assert top.rule == "SKIPPED"
    assert top.sum_out == pytest.approx(e.logit, rel=10 * TOL[net.dtype])


# --------------------------------------------------------------------------
# explain_batch
# --------------------------------------------------------------------------

@pytest.mark.parametrize("absorb", [False, True], ids=["default", "absorb"])
@pytest.mark.parametrize("vid", ["epsilon", "gamma", "alpha-beta", "composite"])
@pytest.mark.parametrize("netname", list(NETS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_explain_batch_matches_explain_row_by_row(backend, netname, vid, absorb, dtype,
                                                  rng):
    net = NETS[netname](dtype)
    kwargs, specs = get_variant(net, vid)
    B = 5
    X = rng.normal(size=(B,) + net.input_shape)
    X[1] = np.abs(X[1])
    X[2] = 0.0
    b = lf.explain_batch(net, X, absorb_bias=absorb, backend=backend, **kwargs)
    assert len(b) == B
    assert b.relevance.shape == (B,) + net.input_shape and b.relevance.dtype == net.dtype
    assert np.shape(b.explained_class) == (B,)
    assert np.shape(b.logits) == (B,)
    assert np.shape(b.max_residual) == (B,)
    assert np.shape(b.residuals) == (B, len(net.layers))
    assert np.reshape(b.outputs, (B, -1)).shape == (B, net.n_outputs)
    for i in range(B):
        exp = L.walk(net, X[i], specs, absorb_bias=absorb)
        single = lf.explain(net, X[i], absorb_bias=absorb, backend=backend, **kwargs)
        row = b[i]
        check_explanation(row, exp, net, what=f"batch row {i}")
        assert int(b.explained_class[i]) == single.explained_class
        assert_close(b.relevance[i], single.relevance, net.dtype, exp.mag,
                     f"batch row {i} vs explain")
        assert_close(b.logits[i], single.logit, net.dtype, exp.logit_mag, "logits")
        assert_close(np.reshape(b.outputs[i], -1), np.reshape(single.output, -1),
                     net.dtype, exp.output_mag, "outputs")
        np.testing.assert_array_equal(b.residuals[i], [x.residual for x in row.boundaries])
        assert b.max_residual[i] == b.residuals[i].max()
    assert b[-1].explained_class == int(b.explained_class[-1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_explain_batch_forced_class(backend, dtype, rng):
    net = norm_net(dtype)
    X = rng.normal(size=(4, 8))
    specs = ("alpha-beta", 2.0)
    b = lf.explain_batch(net, X, rule="alpha-beta", forced_class=2, backend=backend)
    assert list(b.explained_class) == [2] * 4
    forced = np.array([0, 2, 1, 0])
    c = lf.explain_batch(net, X, rule="alpha-beta", forced_class=forced, backend=backend)
    assert list(c.explained_class) == list(forced)
    for i in range(4):
        check_explanation(b[i], L.walk(net, X[i], specs, forced_class=2), net, forced=2)
        check_explanation(c[i], L.walk(net, X[i], specs, forced_class=forced[i]), net,
                          forced=forced[i])
    assert lf.explain_batch(net, X, forced_class=[1, 1, 1, 1], backend=backend
                            ).explained_class.tolist() == [1] * 4


# --------------------------------------------------------------------------
# Purity: nothing is written
# --------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rule", ["epsilon", "gamma", "alpha-beta"])
def test_weights_and_probes_are_byte_identical_after_explaining(rule, backend, dtype, rng):
    for make in NETS.values():
        net = make(dtype)
        before = param_bytes(net)
        x = probe(net, rng).astype(dtype)
        X = rng.normal(size=(3,) + net.input_shape).astype(dtype)
        xb, Xb = x.tobytes(), X.tobytes()
        for absorb in (False, True):
            lf.explain(net, x, rule=rule, absorb_bias=absorb, backend=backend)
            lf.explain_batch(net, X, rule=rule, absorb_bias=absorb, backend=backend)
            lf.explain_batch(net, X, rule=rule, forced_class=0, backend=backend)
        assert param_bytes(net) == before
        assert x.tobytes() == xb and X.tobytes() == Xb


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("vid", ["gamma", "alpha-beta", "epsilon"])
def test_new_weights_are_seen_after_an_explanation(backend, vid, dtype, rng):
    """Derived weights (gamma's w', alpha-beta's splits) must follow assignments."""
    net = image_net(dtype)
    kwargs, specs = get_variant(net, vid)
    x = probe(net, rng, "nonneg")
    lf.explain(net, x, backend=backend, **kwargs)
    lf.explain_batch(net, x[None], backend=backend, **kwargs)
    net.layers[0].weight = rng.normal(size=net.layers[0].weight.shape) / 6
    net.layers[1].bias = rng.normal(size=net.layers[1].bias.shape)
    exp = L.walk(net, x, specs)
    check_explanation(lf.explain(net, x, backend=backend, **kwargs), exp, net)
    check_explanation(lf.explain_batch(net, x[None], backend=backend, **kwargs)[0], exp,
                      net)


# --------------------------------------------------------------------------
# Layout: (C, H, W) probes flatten in C order
# --------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rule", ["epsilon", "gamma", "alpha-beta"])
@pytest.mark.parametrize("pos", [(0, 0, 1), (1, 2, 3), (0, 1, 2), (1, 0, 1), (1, 2, 0)])
def test_chw_probes_flatten_in_c_order(pos, rule, backend, dtype):
    C, H, W = 2, 3, 4
    c, y, x = pos
    flat = (c * H + y) * W + x
    net = lf.Network((C, H, W), [lf.Dense(2, activation="linear")], dtype=dtype, seed=0)
    Wt = np.zeros((C * H * W, 2))
    Wt[flat, 0], Wt[flat, 1] = 1.0, -1.0   # only input `flat` matters
    net.layers[0].weight = Wt
    net.layers[0].bias = np.zeros(2)
    probe_ = np.arange(1.0, C * H * W + 1).reshape(C, H, W) / 8
    v = probe_[c, y, x]
    np.testing.assert_allclose(net.forward(probe_), [v, -v], rtol=1e-6)
    e = lf.explain(net, probe_, rule=rule, backend=backend)
    assert e.explained_class == 0
    nz = np.argwhere(e.relevance != 0)
    assert nz.tolist() == [[c, y, x]], f"relevance lands at {nz.tolist()}"
    assert e.relevance[c, y, x] > 0
    bt = lf.explain_batch(net, np.stack([probe_, 2 * probe_]), rule=rule, backend=backend)
    for i in range(2):
        assert np.argwhere(bt.relevance[i] != 0).tolist() == [[c, y, x]]
    # and the forward reads the same element: changing any other one changes nothing
    other = probe_.copy()
    other[c, y, x] = 0.0
    other2 = other + 1.0
    other2[c, y, x] = 0.0
    np.testing.assert_array_equal(net.forward(other), net.forward(other2))


# --------------------------------------------------------------------------
# SKIPPED layers, degenerate neurons, custom layers
# --------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rule", ["epsilon", "gamma", "alpha-beta"])
def test_layernorm_and_softmax_are_skipped_honestly(rule, backend, dtype, rng):
    net = norm_net(dtype)
    x = probe(net, rng)
    for e in (lf.explain(net, x, rule=rule, backend=backend),
              lf.explain_batch(net, x[None], rule=rule, backend=backend)[0]):
        labels = [b.label for b in e.boundaries]
        assert labels == [rule, f"SKIPPED (no {rule} rule)", rule, rule,
                          f"SKIPPED (no {rule} rule)"]
        for k in (1, 4):
            b = e.boundaries[k]
            assert b.rule == "SKIPPED" and b.reason == f"no {rule} rule"
            assert b.sum_in == b.sum_out and b.residual == 0.0
        # relevance arrives at the LayerNorm's input exactly as it left the Dense above
        assert e.boundaries[1].sum_in == e.boundaries[2].sum_in
        assert e.boundaries[3].sum_out == e.boundaries[4].sum_in


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rule", ["epsilon", "gamma", "alpha-beta"])
def test_inner_softmax_and_top_layernorm(rule, backend, dtype, rng):
    """Only a *trailing* SoftMax moves the seed to its input; with a LayerNorm
    on top the logits are the network's output."""
    spec = {"epsilon": ("epsilon", 1e-2), "gamma": ("gamma", 0.25, 1e-2),
            "alpha-beta": ("alpha-beta", 2.0)}[rule]
    for layers in ([lf.Dense(6, activation="tanh"), lf.SoftMax(), lf.Dense(3)],
                   [lf.Dense(6, activation="relu"), lf.Dense(4), lf.LayerNorm()]):
        net = randomize_params(lf.Network((5,), layers, dtype=dtype, seed=4), 4)
        x = probe(net, rng)
        exp = L.walk(net, x, spec)
        check_explanation(lf.explain(net, x, rule=rule, backend=backend), exp, net)
        assert_close(exp.logit, exp.output[exp.explained_class], "float64")


class Halve(lf.Layer):
    """A rule-less layer that changes the shape (keeps every other feature)."""

    kind = "halve"

    def _output_shape(self, input_shape):
        return ((input_shape[0] + 1) // 2,)

    def _forward(self, A):
        return A[:, ::2]


class Square(lf.Layer):
    """A rule-less layer that keeps the shape."""

    kind = "square"

    def _forward(self, A):
        return A * A


@pytest.mark.parametrize("backend", BACKENDS)
def test_rule_less_layer_that_changes_the_shape_raises(backend, dtype, rng):
    net = lf.Network((6,), [lf.Dense(8, activation="relu"), Halve(name="halver"),
                            lf.Dense(2)], dtype=dtype, seed=0)
    x = rng.normal(size=6)
    assert net.forward(x).shape == (2,)
    with pytest.raises(ValueError, match="halver"):
        lf.explain(net, x, backend=backend)
    with pytest.raises(ValueError, match="halver"):
        lf.explain_batch(net, x[None], backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rule", ["epsilon", "alpha-beta"])
def test_rule_less_layer_of_same_shape_is_skipped(rule, backend, dtype, rng):
    net = lf.Network((6,), [lf.Dense(5, activation="tanh"), Square(name="sq"),
                            lf.Dense(2)], dtype=dtype, seed=3)
    randomize_params(net, 3)
    x = rng.normal(size=6)
    spec = ("epsilon", 1e-2) if rule == "epsilon" else ("alpha-beta", 2.0)
    e = lf.explain(net, x, rule=rule, backend=backend)
    check_explanation(e, L.walk(net, x, spec), net)
    assert e.boundaries[1].label == f"SKIPPED (no {rule} rule)"


@pytest.mark.parametrize("absorb", [False, True], ids=["default", "absorb"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_degenerate_neurons_are_counted_in_a_network(backend, absorb, dtype):
    """tanh keeps negative activations, so an all-negative column is degenerate."""
    rng = np.random.default_rng(5)
    net = lf.Network((5,), [lf.Dense(4, activation="tanh"), lf.Dense(3)], dtype=dtype,
                     seed=0)
    W0 = np.abs(rng.normal(size=(5, 4)))
    W0[:, 1] = -W0[:, 1]          # neuron 1: only negative contributions, P = 0
    W0[:, 2] = 0.0                # neuron 2: no contributions, P = N = 0
    net.layers[0].weight = W0
    net.layers[0].bias = np.zeros(4) if not absorb else np.array([0.1, -0.2, 0.0, 0.3])
    net.layers[1].weight = rng.normal(size=(4, 3)) + 0.5
    net.layers[1].bias = np.zeros(3)
    x = np.abs(rng.normal(size=5)) + 0.1
    for alpha in (2.0, 1.0):
        spec = ("alpha-beta", alpha)
        exp = L.walk(net, x, spec, absorb_bias=absorb)
        assert exp.boundaries[0]["degenerate"] >= 1    # the case is what it claims
        e = lf.explain(net, x, rule="alpha-beta", alpha=alpha, absorb_bias=absorb,
                       backend=backend)
        check_explanation(e, exp, net)
        b = lf.explain_batch(net, np.stack([x, x]), rule="alpha-beta", alpha=alpha,
                             absorb_bias=absorb, backend=backend)
        check_explanation(b[1], exp, net)
        if not absorb:
            # conservation fails exactly by the relevance lost at degenerate neurons
            assert_close(e.boundaries[0].residual,
                         abs(exp.boundaries[0]["degenerate_share"]), dtype,
                         exp.boundaries[0]["share_mag"], "residual")


def test_loops_walk_conserves_alpha_beta_without_degenerate_neurons():
    """The loop walk itself: alpha-beta on a positive net conserves exactly."""
    net = lf.Network((4,), [lf.Dense(3, activation="relu"), lf.Dense(2)],
                     dtype="float64", seed=0)
    net.layers[0].weight = np.array([[1.0, 2, -1], [0.5, -1, 1], [2, 1, 1], [-1, 1, 0.5]])
    net.layers[1].weight = np.array([[1.0, -1], [2, 1], [-0.5, 1]])
    exp = L.walk(net, [1.0, 2.0, 0.5, 0.25], ("alpha-beta", 2.0))
    for b in exp.boundaries:
        assert b["degenerate"] == 0
        assert b["residual"] < 1e-12
