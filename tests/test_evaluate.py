"""lrpfast.evaluate: pixel flipping against a plain loop, its invariants, bad input.

The reference ``plain_curves`` is written from the definitions (issue 9, the
README section "Which rule should I trust?"): probe by probe, step by step,
with ``Network.forward`` on a copy of the probe and Python's ``sorted`` for
the order.  It shares no code with ``evaluate.py``.
"""

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import lrpfast as lf
from lrpfast import evaluate
from conftest import param_bytes, randomize_params

TOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-11}


# --------------------------------------------------------------------------
# The plain-loop reference
# --------------------------------------------------------------------------

def plain_order(r, order, region=None, shape=None):
    """Flat feature order for one probe's relevance ``r`` (flat)."""
    if region is None:
        units = [[f] for f in range(r.size)]
    else:
        C, H, W = shape
        h, w = region
        units = []
        for ty in range(H // h):
            for tx in range(W // w):
                units.append(sorted((c * H + y) * W + x for c in range(C)
                                    for y in range(ty * h, ty * h + h)
                                    for x in range(tx * w, tx * w + w)))
    score = [sum(float(r[f]) for f in u) for u in units]
    sign = -1.0 if order == "morf" else 1.0
    ranked = sorted(range(len(units)), key=lambda i: (sign * score[i], i))
    return [units[i] for i in ranked]


def plain_score(net, x, cls, score):
    """Probability or logit of class ``cls`` for one flat probe, by hand."""
    out = net.forward(x.reshape(net.input_shape)).astype(np.float64).ravel()
    layers = net.layers
    if isinstance(layers[-1], lf.SoftMax):
        # logits: the input of the SoftMax
        A = x.reshape(1, -1).astype(net.dtype)
        for layer in layers[:-1]:
            A = layer._forward(A)
        logits = A.astype(np.float64).ravel()
        return out[cls] if score == "probability" else logits[cls]
    if score == "logit":
        return out[cls]
    if out.size == 1:
        return 1.0 / (1.0 + math.exp(-out[0]))
    e = np.exp(out - out.max())
    return e[cls] / e.sum()


def plain_curves(net, X, R, order, k, steps=None, baseline=0.0, score="probability",
                 target=None, region=None):
    X = np.asarray(X, dtype=net.dtype).reshape(len(X), -1)
    R = np.asarray(R, dtype=np.float64).reshape(len(X), -1)
    n = X.shape[1]
    if isinstance(baseline, str):
        base = X.astype(np.float64).mean(axis=0).astype(net.dtype)
    else:
        base = np.broadcast_to(np.asarray(baseline, dtype=net.dtype), net.input_shape)
        base = base.reshape(-1)
    rows, fracs = [], None
    for i in range(len(X)):
        units = plain_order(R[i], order, region, net.input_shape)
        x = X[i].copy()
        cls = int(net.forward(x.reshape(net.input_shape)).argmax()) if target is None \
            else int(np.broadcast_to(target, len(X))[i])
        T = math.ceil(len(units) / k) if steps is None else min(steps,
                                                               math.ceil(len(units) / k))
        curve, frac, done = [plain_score(net, x, cls, score)], [0.0], 0
        for t in range(T):
            for u in units[t * k:(t + 1) * k]:
                for f in u:
                    x[f] = base[f]
                    done += 1
            curve.append(plain_score(net, x, cls, score))
            frac.append(done / n)
        rows.append(curve)
        fracs = frac
    return np.array(rows), np.array(fracs)


def small_net(dtype="float64", head="softmax", n_out=3, shape=(2, 4, 6), seed=0):
    layers = [lf.Dense(12, "relu"), lf.Dense(8, "tanh"), lf.Dense(n_out)]
    if head == "softmax":
        layers.append(lf.SoftMax())
    net = lf.Network(shape, layers, dtype=dtype, seed=seed)
    return randomize_params(net, seed=seed)


@pytest.fixture
def data(rng):
    X = rng.uniform(0, 1, (7, 2, 4, 6))
    R = rng.normal(size=X.shape)
    return X, R


def assert_curves(actual, expected, dtype):
    np.testing.assert_allclose(actual, expected, rtol=TOL[np.dtype(dtype)],
                               atol=TOL[np.dtype(dtype)])


# --------------------------------------------------------------------------
# Definitions against the plain loop
# --------------------------------------------------------------------------

@pytest.mark.parametrize("order", ["morf", "lerf"])
@pytest.mark.parametrize("k", [1, 5, 48])
@pytest.mark.parametrize("score", ["probability", "logit"])
def test_curves_match_plain_loop(data, dtype, order, k, score):
    X, R = data
    net = small_net(dtype)
    res = evaluate.pixel_flipping(net, X, R, order=order, features_per_step=k, score=score)
    exp, frac = plain_curves(net, X, R, order, k, score=score)
    assert res.curves.dtype == np.float64 and res.curves.shape == exp.shape
    assert_curves(res.curves, exp, dtype)
    np.testing.assert_allclose(res.fraction, frac, rtol=0, atol=1e-15)
    assert res.order == order and res.score == score and res.label == ""


def test_aopc_and_auc_definitions(data, dtype):
    X, R = data
    net = small_net(dtype)
    res = evaluate.pixel_flipping(net, X, R, features_per_step=7)
    c, f = res.curves, res.fraction
    T = c.shape[1] - 1
    for i in range(len(c)):
        aopc = sum(c[i, 0] - c[i, t] for t in range(T + 1)) / (T + 1)
        auc = sum((f[t] - f[t - 1]) * (c[i, t] + c[i, t - 1]) / 2 for t in range(1, T + 1))
        assert res.aopc[i] == pytest.approx(aopc, rel=1e-12, abs=1e-15)
        assert res.auc[i] == pytest.approx(auc, rel=1e-12, abs=1e-15)
    # 48 features, 7 per step: 7 steps, the last one replaces 6
    assert T == 7 and f[-1] == 1.0 and f[-2] == pytest.approx(42 / 48)
    np.testing.assert_allclose(res.mean_curve, c.mean(axis=0))


@pytest.mark.parametrize("baseline", [0.25, "mean", "array"])
def test_baselines(data, baseline, rng):
    X, R = data
    net = small_net("float64")
    if baseline == "array":
        baseline = rng.normal(size=net.input_shape)
    res = evaluate.pixel_flipping(net, X, R, features_per_step=3, baseline=baseline)
    exp, _ = plain_curves(net, X, R, "morf", 3, baseline=baseline)
    assert_curves(res.curves, exp, "float64")


def test_steps_and_target(data):
    X, R = data
    net = small_net("float64")
    tgt = np.array([0, 1, 2, 0, 1, 2, 0])
    res = evaluate.pixel_flipping(net, X, R, features_per_step=2, steps=5, target=tgt)
    exp, frac = plain_curves(net, X, R, "morf", 2, steps=5, target=tgt)
    assert res.curves.shape == (7, 6)
    assert_curves(res.curves, exp, "float64")
    np.testing.assert_array_equal(res.target, tgt)
    assert res.fraction[-1] == pytest.approx(10 / 48)
    res1 = evaluate.pixel_flipping(net, X, R, features_per_step=2, steps=999, target=1)
    assert res1.curves.shape == (7, 25)
    np.testing.assert_array_equal(res1.target, np.ones(7))


@pytest.mark.parametrize("region", [(2, 3), (1, 1), (4, 6)])
def test_region_matches_plain_loop(data, dtype, region):
    X, R = data
    net = small_net(dtype)
    res = evaluate.pixel_flipping(net, X, R, region=region, features_per_step=2)
    exp, frac = plain_curves(net, X, R, "morf", 2, region=region)
    assert_curves(res.curves, exp, dtype)
    np.testing.assert_allclose(res.fraction, frac)
    assert res.region == region


def test_ties_go_to_the_lower_flat_index(data):
    X, _ = data
    net = small_net("float64")
    R = np.zeros(X.shape)
    R[:, 0, 1, :3] = 1.0                # three tied features, flat 6, 7, 8
    for order in ("morf", "lerf"):
        res = evaluate.pixel_flipping(net, X, R, order=order)
        exp, _ = plain_curves(net, X, R, order, 1)
        assert_curves(res.curves, exp, "float64")
    # by hand, MoRF: flat 6 first, then 7, then 8, then 0, 1, ...
    x = X[0].reshape(-1).copy()
    cls = int(net.forward(X[0]).argmax())
    res = evaluate.pixel_flipping(net, X[:1], R[:1], order="morf", steps=4)
    for t, f in enumerate([6, 7, 8, 0], 1):
        x[f] = 0.0
        assert res.curves[0, t] == pytest.approx(net.forward(x.reshape(2, 4, 6))[cls],
                                                 rel=1e-12)


def test_incremental_first_layer_equals_recomputation():
    """The float64 rank-k update of Z1 against plain float32 recomputation."""
    rng = np.random.default_rng(3)
    for dtype in ("float32", "float64"):
        net = lf.Network((784,), [lf.Dense(64, "relu"), lf.Dense(32, "relu"), lf.Dense(10),
                                  lf.SoftMax()], dtype=dtype, seed=1)
        randomize_params(net, seed=1, bias_scale=0.05)
        X = rng.uniform(0, 1, (6, 784))
        R = rng.normal(size=X.shape)
        res = evaluate.pixel_flipping(net, X, R, features_per_step=8, score="logit")
        # the same perturbation sequence, recomputed from scratch every step
        Xc = X.astype(dtype)
        order = np.argsort(-R, axis=1, kind="stable")
        cls = net.forward(Xc).argmax(axis=1)
        rows = np.arange(6)
        body = lf.Network((784,), [lf.Dense(64, "relu"), lf.Dense(32, "relu"), lf.Dense(10)],
                          dtype=dtype)
        for a, b in zip(body.dense_layers, net.dense_layers):
            a.weight, a.bias = b.weight, b.bias
        cur = Xc.copy()
        for t in range(res.curves.shape[1]):
            if t:
                sel = order[:, (t - 1) * 8:t * 8]
                np.put_along_axis(cur, sel, 0.0, axis=1)
            exp = body.forward(cur)[rows, cls].astype(np.float64)
            assert_curves(res.curves[:, t], exp, dtype)
        assert res.curves.shape == (6, 99)


def test_sigmoid_output_and_plain_head(data):
    X, R = data
    net1 = small_net("float64", head=None, n_out=1)
    res = evaluate.pixel_flipping(net1, X, R, features_per_step=4)
    exp, _ = plain_curves(net1, X, R, "morf", 4)
    assert_curves(res.curves, exp, "float64")
    assert ((res.curves > 0) & (res.curves < 1)).all()
    net3 = small_net("float64", head=None, n_out=3)
    for score in ("probability", "logit"):
        res = evaluate.pixel_flipping(net3, X, R, features_per_step=4, score=score)
        exp, _ = plain_curves(net3, X, R, "morf", 4, score=score)
        assert_curves(res.curves, exp, "float64")


def test_batch_explanation_gives_label_and_classes(data):
    X, _ = data
    net = small_net("float64")
    b = lf.explain_batch(net, X, rule="gamma", forced_class=2)
    res = evaluate.pixel_flipping(net, X, b, features_per_step=6)
    assert res.label == b.rule == "gamma-rule (gamma=0.25, eps=0.01)"
    np.testing.assert_array_equal(res.target, 2)
    exp, _ = plain_curves(net, X, b.relevance, "morf", 6, target=2)
    assert_curves(res.curves, exp, "float64")


def test_single_probe_is_a_batch_of_one(data):
    X, R = data
    net = small_net("float64")
    one = evaluate.pixel_flipping(net, X[0], R[0], features_per_step=5)
    many = evaluate.pixel_flipping(net, X, R, features_per_step=5)
    assert one.curves.shape == (1, many.curves.shape[1])
    # BLAS may round a 1-row product differently from a 7-row one
    np.testing.assert_allclose(one.curves[0], many.curves[0], rtol=1e-13)


# --------------------------------------------------------------------------
# Invariants
# --------------------------------------------------------------------------

@pytest.mark.parametrize("order", ["morf", "lerf", "random"])
def test_chunking_does_not_change_results(data, order):
    X, R = data
    net = small_net("float32")
    whole = evaluate.pixel_flipping(net, X, R, order=order, features_per_step=3, seed=5)
    for cs in (1, 3):
        part = evaluate.pixel_flipping(net, X, R, order=order, features_per_step=3, seed=5,
                                       chunk_size=cs)
        # equal up to BLAS rounding of different batch sizes (the orders are equal)
        np.testing.assert_allclose(part.curves, whole.curves, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(part.target, whole.target)


def test_random_order_is_seeded_and_ignores_relevance(data):
    X, R = data
    net = small_net("float64")
    a = evaluate.pixel_flipping(net, X, R, order="random", seed=1)
    b = evaluate.pixel_flipping(net, X, -R, order="random", seed=1)
    c = evaluate.pixel_flipping(net, X, R, order="random", seed=2)
    np.testing.assert_array_equal(a.curves, b.curves)
    assert not np.array_equal(a.curves, c.curves)
    # every order ends at the all-baseline probe
    m = evaluate.pixel_flipping(net, X, R, order="morf")
    np.testing.assert_allclose(a.curves[:, [0, -1]], m.curves[:, [0, -1]], rtol=1e-12)


def test_random_order_is_a_permutation():
    """On a linear logit, each step's drop is the sum of its features' terms."""
    rng = np.random.default_rng(0)
    net = lf.Network((10,), [lf.Dense(1)], dtype="float64", seed=0)
    w = 2.0 ** np.arange(10)           # distinct powers of 2: a drop names its feature
    net.layers[0].weight = w[:, None]
    X = np.ones((4, 10))
    res = evaluate.pixel_flipping(net, X, rng.normal(size=(4, 10)), order="random",
                                  score="logit", seed=3)
    drops = -np.diff(res.curves, axis=1)
    for row in drops:
        feats = np.log2(row).round().astype(int)
        np.testing.assert_array_equal(np.sort(feats), np.arange(10))


def test_network_is_not_modified(data):
    X, R = data
    net = small_net("float32")
    before = param_bytes(net)
    evaluate.pixel_flipping(net, X, R, features_per_step=2)
    evaluate.compare_rules(net, X, ["epsilon"], features_per_step=8)
    assert param_bytes(net) == before


# --------------------------------------------------------------------------
# compare_rules
# --------------------------------------------------------------------------

def test_compare_rules_table_and_best(data):
    X, _ = data
    net = small_net("float64")
    cmp = evaluate.compare_rules(net, X, ["epsilon", lf.Gamma(gamma=0.5),
                                          [lf.Gamma(gamma=0.25), lf.Epsilon(), lf.Epsilon()]],
                                 features_per_step=4)
    assert len(cmp.labels) == 3 and cmp.labels[0] == "epsilon-rule (eps=0.01)"
    for lab in cmp.labels:
        b = lf.explain_batch(net, X, rule={0: "epsilon", 1: lf.Gamma(gamma=0.5),
                                           2: [lf.Gamma(gamma=0.25), lf.Epsilon(),
                                               lf.Epsilon()]}[cmp.labels.index(lab)])
        m = evaluate.pixel_flipping(net, X, b, order="morf", features_per_step=4)
        np.testing.assert_array_equal(cmp.morf[lab].curves, m.curves)
        assert cmp.morf[lab].label == cmp.lerf[lab].label == cmp.random[lab].label == lab
    gaps = {l: (cmp.morf[l].aopc - cmp.lerf[l].aopc).mean() for l in cmp.labels}
    assert cmp.best == max(gaps, key=gaps.get)
    text = str(cmp)
    assert text == cmp.table()
    assert max(len(line) for line in text.splitlines()) <= 100
    # a long composite label is wrapped between its layers, never cut
    assert "composite: " in cmp.labels[2] and len(cmp.labels[2]) > 44
    for lab in cmp.labels:
        for part in lab.split(" / "):
            assert part in text
    marked = [line for line in text.splitlines() if line.startswith("* ")
              and "best" not in line]
    assert len(marked) == 1 and cmp.best[:20] in marked[0]
    assert f"{gaps[cmp.best]:.4f}" in marked[0]


def test_compare_rules_bad_input(data):
    X, _ = data
    net = small_net("float64")
    with pytest.raises(TypeError, match="order"):
        evaluate.compare_rules(net, X, ["epsilon"], order="morf")
    with pytest.raises(ValueError, match="rules"):
        evaluate.compare_rules(net, X, [])
    with pytest.raises(ValueError, match="rules: two entries"):
        evaluate.compare_rules(net, X, ["epsilon", lf.Epsilon(eps=0.01)])
    with pytest.raises(ValueError, match="rule"):
        evaluate.compare_rules(net, X, ["no-such-rule"])
    with pytest.raises(ValueError, match="target"):
        evaluate.compare_rules(net, X, ["epsilon"], target=7)


@pytest.fixture(scope="module")
def blob_net():
    """The demo's network, trained on the blob task as cli.run_demo trains it."""
    net = lf.Network(lf.datasets.SHAPE, [lf.Dense(16, "relu"), lf.Dense(12, "relu"),
                                         lf.Dense(2, "linear"), lf.SoftMax()], seed=0)
    X, y = lf.datasets.blobs(480, noise=0.1, seed=0)
    hist = lf.train(net, X, y, epochs=30, batch_size=24, lr=0.01, momentum=0.9, seed=0)
    assert hist.accuracy[-1] == 1.0
    return net


def test_blob_task_morf_beats_random_beats_lerf(blob_net):
    """Done-when of issue 9: MoRF AOPC > random AOPC > LeRF AOPC for every rule."""
    X = lf.datasets.blobs(200, noise=0.1, seed=11)[0]
    cmp = evaluate.compare_rules(blob_net, X, ["epsilon", "gamma", "alpha-beta"])
    for lab in cmp.labels:
        morf, rnd, lerf = (d[lab].aopc.mean() for d in (cmp.morf, cmp.random, cmp.lerf))
        assert morf > rnd > lerf, (lab, morf, rnd, lerf)


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, exc, match", [
    ({"order": "best"}, ValueError, "order"),
    ({"order": None}, ValueError, "order"),
    ({"score": "softmax"}, ValueError, "score"),
    ({"features_per_step": 0}, ValueError, "features_per_step"),
    ({"features_per_step": 1.5}, TypeError, "features_per_step"),
    ({"steps": 0}, ValueError, "steps"),
    ({"steps": "all"}, TypeError, "steps"),
    ({"baseline": "median"}, ValueError, "baseline"),
    ({"baseline": None}, TypeError, "baseline"),
    ({"baseline": float("nan")}, ValueError, "baseline"),
    ({"baseline": np.zeros((2, 4))}, ValueError, "baseline"),
    ({"baseline": "x" * 3}, ValueError, "baseline"),
    ({"target": 3}, ValueError, "target"),
    ({"target": -1}, ValueError, "target"),
    ({"target": np.array([0, 1])}, ValueError, "target"),
    ({"target": np.full(7, 5)}, ValueError, "target"),
    ({"target": np.full(7, 0.5)}, ValueError, "target"),
    ({"seed": -1}, ValueError, "seed"),
    ({"region": (3, 3)}, ValueError, "region"),
    ({"region": (2,)}, TypeError, "region"),
    ({"region": (0, 2)}, ValueError, "region"),
    ({"region": "2x2"}, TypeError, "region"),
    ({"chunk_size": 0}, ValueError, "chunk_size"),
])
def test_bad_options(data, kwargs, exc, match):
    X, R = data
    net = small_net("float64")
    with pytest.raises(exc, match=match):
        evaluate.pixel_flipping(net, X, R, **kwargs)


def test_bad_arrays(data):
    X, R = data
    net = small_net("float64")
    with pytest.raises(ValueError, match="relevance"):
        evaluate.pixel_flipping(net, X, R[:3])
    with pytest.raises(ValueError, match="relevance"):
        evaluate.pixel_flipping(net, X, R.reshape(7, -1))
    Rn = R.copy()
    Rn[2, 0, 1, 1] = np.nan
    with pytest.raises(ValueError, match="relevance contains NaN"):
        evaluate.pixel_flipping(net, X, Rn)
    with pytest.raises(TypeError, match="relevance"):
        evaluate.pixel_flipping(net, X, "relevance")
    Xn = X.copy()
    Xn[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        evaluate.pixel_flipping(net, Xn, R)
    with pytest.raises(ValueError, match="X"):
        evaluate.pixel_flipping(net, X[:, :1], R[:, :1])
    with pytest.raises(TypeError, match="net"):
        evaluate.pixel_flipping("net", X, R)
    b = lf.explain_batch(net, X[:3])
    with pytest.raises(ValueError, match="relevance: the BatchExplanation holds 3"):
        evaluate.pixel_flipping(net, X, b)


def test_region_needs_image_input(rng):
    net = lf.Network((12,), [lf.Dense(4, "relu"), lf.Dense(2)], seed=0)
    X = rng.uniform(size=(3, 12))
    with pytest.raises(ValueError, match="region needs image-like input"):
        evaluate.pixel_flipping(net, X, X, region=(2, 2))


def test_overflow_is_refused_not_nan(rng):
    net = lf.Network((4,), [lf.Dense(3, "relu"), lf.Dense(2)], dtype="float32", seed=0)
    net.layers[0].weight = np.full((4, 3), 1e30)
    X = np.full((2, 4), 1e9)
    with pytest.raises(ValueError, match="overflow"):
        evaluate.pixel_flipping(net, X, X, score="logit")


# --------------------------------------------------------------------------
# Property: any small network, probe batch and step size
# --------------------------------------------------------------------------



@given(seed=st.integers(0, 2**16), n=st.integers(2, 40), k=st.integers(1, 12),
       order=st.sampled_from(["morf", "lerf"]), score=st.sampled_from(["probability", "logit"]),
       dtype=st.sampled_from(["float32", "float64"]),
       steps=st.one_of(st.none(), st.integers(1, 6)), head=st.booleans())
def test_property_plain_loop(seed, n, k, order, score, dtype, steps, head):
    rng = np.random.default_rng(seed)
    layers = [lf.Dense(int(rng.integers(1, 9)), "relu"), lf.Dense(int(rng.integers(1, 4)))]
    if head:
        layers.append(lf.SoftMax())
    net = randomize_params(lf.Network((n,), layers, dtype=dtype, seed=seed), seed=seed)
    X = rng.normal(size=(3, n))
    R = rng.normal(size=(3, n)).round(1)          # rounding makes ties common
    base = float(rng.normal())
    res = evaluate.pixel_flipping(net, X, R, order=order, features_per_step=k, steps=steps,
                                  baseline=base, score=score)
    exp, frac = plain_curves(net, X, R, order, k, steps=steps, baseline=base, score=score)
    # magnitude-aware: logits can be large when the net is deep in one class
    tol = TOL[np.dtype(dtype)] * (1 + np.abs(exp).max())
    np.testing.assert_allclose(res.curves, exp, rtol=0, atol=tol)
    np.testing.assert_allclose(res.fraction, frac, atol=1e-15)
    np.testing.assert_allclose(res.aopc, (exp[:, :1] - exp).mean(axis=1), rtol=0,
                               atol=tol)


@pytest.mark.parametrize("first", ["layernorm", "flatten", "tanh-dense"])
def test_other_first_layers(data, first):
    """Nets whose first layer is not a plain Dense, or is looked through."""
    X, R = data
    head = {"layernorm": [lf.LayerNorm()], "flatten": [lf.Flatten(), lf.Identity()],
            "tanh-dense": []}[first]
    body = [lf.Dense(10, "tanh" if first == "tanh-dense" else "relu"), lf.Dense(3),
            lf.SoftMax()]
    net = randomize_params(lf.Network((2, 4, 6), head + body, dtype="float64", seed=2), 2)
    for k in (1, 20):
        res = evaluate.pixel_flipping(net, X, R, features_per_step=k, baseline=0.5)
        exp, _ = plain_curves(net, X, R, "morf", k, baseline=0.5)
        assert_curves(res.curves, exp, "float64")


def test_compare_rules_passes_progress_through(data, capsys):
    X, _ = data
    net = small_net("float64")
    quiet = evaluate.compare_rules(net, X, ["epsilon", "gamma"], steps=3)
    pytest.importorskip("tqdm")
    shown = evaluate.compare_rules(net, X, ["epsilon", "gamma"], steps=3, progress=True)
    assert shown.table() == quiet.table()
    assert "flip" in capsys.readouterr().err          # the bars of pixel_flipping
    with pytest.raises(TypeError, match="progress"):  # validated by pixel_flipping
        evaluate.compare_rules(net, X, ["epsilon"], steps=3, progress="yes")


def test_compare_rules_footnotes_rules_whose_relevance_ties(data):
    X, _ = data
    net = small_net("float64")
    cmp = evaluate.compare_rules(net, X, ["epsilon", "flat"], steps=4)
    # the flat rule gives every input the same relevance: both orders are the flat index
    np.testing.assert_array_equal(cmp.morf["flat-rule"].curves, cmp.lerf["flat-rule"].curves)
    text = cmp.table()
    foot = [line for line in text.splitlines() if line.startswith("  MoRF = LeRF")]
    assert len(foot) == 1 and "flat-rule" in foot[0] and "epsilon" not in foot[0]
    assert "broken by flat index" in " ".join(text.split())
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "MoRF = LeRF" not in evaluate.compare_rules(net, X, ["epsilon"], steps=4).table()
