"""Hypothesis properties: conservation, degenerate neurons, the epsilon
residual bound, shares that add up, determinism (also across threads)."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import _loops as L
from conftest import DTYPES, TOL, assert_close, randomize_params

import lrpfast as lf
from lrpfast import _kernels as K
from lrpfast import reference

# Values exact in float32, either 0 or at least 1e-2 in size: products never
# underflow, so "P_j == 0" and "R_j != 0" mean the same in both dtypes.
_LOW = float(np.float32(1e-2))
ELEM = st.one_of(st.just(0.0),
                 st.floats(_LOW, 4.0, width=32),
                 st.floats(-4.0, -_LOW, width=32))
POS = st.floats(_LOW, 4.0, width=32)
dtypes = st.sampled_from(DTYPES)
sizes = st.integers(1, 12)


def vec(n, elements=ELEM):
    return arrays(np.float64, n, elements=elements)


def mat(n, m, elements=ELEM):
    return arrays(np.float64, (n, m), elements=elements)


def as_dtype(dtype, *vs):
    return [np.ascontiguousarray(v, dtype=dtype) for v in vs]


def run_kernel(spec, a, W, b, R, absorb):
    """K.dense_backward for a loop spec; returns (R_in, shares)."""
    z = np.ascontiguousarray(L.dense_forward(a, W, b)[0], dtype=a.dtype)
    code, p1, p2 = {"epsilon": lambda: (0, spec[1], 0.0),
                    "gamma": lambda: (0, spec[2], spec[1]),
                    "alpha-beta": lambda: (1, spec[1], spec[1] - 1.0)}[spec[0]]()
    R_in = np.zeros(a.shape[0], dtype=a.dtype)
    shares = K.dense_backward(a, W, b, z, R, code, p1, p2, absorb, R_in)
    return R_in, tuple(float(s) for s in shares)


def run_reference(spec, a, W, b, R, absorb):
    A, Rb = a[None], R[None]
    if spec[0] == "epsilon":
        R_in, sh = reference.epsilon(A, W, b, Rb, spec[1], absorb_bias=absorb)
    elif spec[0] == "gamma":
        R_in, sh = reference.gamma(A, W, b, Rb, spec[1], spec[2], absorb_bias=absorb)
    else:
        R_in, sh = reference.alpha_beta(A, W, b, Rb, spec[1], absorb_bias=absorb)
    return np.asarray(R_in)[0], tuple(float(s) for s in np.asarray(sh)[0])


RUNNERS = {"kernel": run_kernel, "reference": run_reference}
runners = st.sampled_from(sorted(RUNNERS))


def well_posed(spec, a, W, b, absorb, dtype):
    """No epsilon denominator within rounding of 0 (its sign would be noise)."""
    if spec[0] == "alpha-beta":
        return True
    g = spec[1] if spec[0] == "gamma" else 0.0
    Wp = W + g * np.maximum(W, 0)
    bp = b + g * np.maximum(b, 0)
    C = a[:, None] * Wp
    d = C.sum(0) + (bp if absorb else 0)
    size = np.abs(C).sum(0) + np.abs(bp)
    thr = 1e-4 if dtype == np.float32 else 1e-12
    return bool(np.all((size == 0) | (np.abs(d) > thr * size)))


# --------------------------------------------------------------------------
# Alpha-beta: conservation and degenerate neurons
# --------------------------------------------------------------------------

@st.composite
def non_degenerate_layer(draw):
    """Every neuron has a positive and a negative contribution (P > 0 > N)."""
    n, m = draw(st.integers(2, 12)), draw(sizes)
    a = draw(vec(n, st.one_of(POS, POS.map(lambda v: -v))))
    W = draw(mat(n, m))
    W[0] = np.sign(a[0]) * (np.abs(W[0]) + 0.5)     # c_0j > 0
    W[1] = -np.sign(a[1]) * (np.abs(W[1]) + 0.5)    # c_1j < 0
    b = draw(vec(m))
    R = draw(vec(m))
    return a, W, b, R


@given(data=non_degenerate_layer(), alpha=st.floats(1.0, 4.0), dtype=dtypes,
       absorb=st.booleans(), runner=runners)
def test_alpha_beta_conserves_without_degenerate_neurons(data, alpha, dtype, absorb,
                                                        runner):
    a, W, b, R = as_dtype(dtype, *data)
    exp = L.alpha_beta(a, W, b, R, alpha, absorb_bias=absorb)
    assert exp.degenerate == 0
    R_in, (bias_s, stab_s, deg_s, n_deg) = RUNNERS[runner](("alpha-beta", alpha), a, W,
                                                          b, R, absorb)
    assert n_deg == 0
    assert_close(deg_s, 0.0, dtype, exp.share_mag, "degenerate share")
    assert_close(stab_s, 0.0, dtype, exp.share_mag, "stabilizer share")
    lost = R.astype(np.float64).sum() - R_in.astype(np.float64).sum()
    if absorb:
        assert_close(bias_s, exp.bias_share, dtype, exp.share_mag, "bias share")
        assert_close(lost, exp.bias_share, dtype, exp.share_mag, "lost to the bias")
    else:
        # conserved to rounding
        assert_close(bias_s, 0.0, dtype, exp.share_mag, "bias share")
        assert_close(lost, 0.0, dtype, exp.share_mag, "sum_out - sum_in")


@st.composite
def degenerate_layer(draw):
    """a >= 0 and columns of chosen kinds: mixed, all-negative (P = 0),
    all-positive (N = 0) or zero (P = N = 0)."""
    n, m = draw(sizes), draw(sizes)
    a = draw(vec(n, st.one_of(st.just(0.0), POS)))
    a[0] = a[0] + 0.5
    if n > 1:
        a[1] = a[1] + 0.5
    kinds = draw(st.lists(st.sampled_from(["mixed", "neg", "pos", "zero"]),
                          min_size=m, max_size=m))
    W = np.abs(draw(mat(n, m))) + 0.25
    for j, kind in enumerate(kinds):
        if kind == "mixed" and n == 1:
            kinds[j] = kind = "pos"
        if kind == "neg":
            W[:, j] = -W[:, j]
        elif kind == "zero":
            W[:, j] = 0.0
        elif kind == "mixed":
            W[1, j] = -W[1, j]
    R = draw(vec(m))
    return a, W, R, kinds


@given(data=degenerate_layer(), alpha=st.sampled_from([1.0, 1.5, 2.0, 3.0]),
       dtype=dtypes, runner=runners)
def test_alpha_beta_degenerate_neurons_are_counted(data, alpha, dtype, runner):
    a, W, R, kinds = data
    b = np.zeros(W.shape[1])
    a, W, b, R = as_dtype(dtype, a, W, b, R)
    beta = alpha - 1.0
    # by hand, from the column kinds
    count, lost = 0, 0.0
    for j, kind in enumerate(kinds):
        if R[j] == 0:
            continue
        if kind == "neg":       # P = 0, N != 0: R_j (1 + beta)
            count, lost = count + 1, lost + float(R[j]) * (1 + beta)
        elif kind == "zero":    # P = N = 0: all of R_j
            count, lost = count + 1, lost + float(R[j])
        elif kind == "pos" and beta != 0:   # N = 0: R_j (1 - alpha)
            count, lost = count + 1, lost + float(R[j]) * (1 - alpha)
    exp = L.alpha_beta(a, W, b, R, alpha)
    assert exp.degenerate == count
    R_in, (bias_s, stab_s, deg_s, n_deg) = RUNNERS[runner](("alpha-beta", alpha), a, W,
                                                          b, R, False)
    assert n_deg == count
    assert_close(deg_s, lost, dtype, exp.share_mag, "degenerate share")
    assert_close(R.astype(np.float64).sum() - R_in.astype(np.float64).sum(), lost, dtype,
                 exp.share_mag, "sum_out - sum_in")
    assert_close(R_in, exp.R_in, dtype, exp.mag_in, "R_in")


# --------------------------------------------------------------------------
# Epsilon: the residual bound, and its limit eps -> 0
# --------------------------------------------------------------------------

EPS_LADDER = (1.0, 1e-1, 1e-2, 1e-3, 1e-5, 1e-8)


@st.composite
def bias_free_layer(draw):
    n, m = draw(sizes), draw(sizes)
    return draw(vec(n)), draw(mat(n, m)), np.zeros(m), draw(vec(m))


@given(data=bias_free_layer(), gamma=st.sampled_from([None, 0.25, 1.0]),
       dtype=dtypes, runner=runners, same_sign=st.booleans())
def test_epsilon_residual_is_bounded_and_shrinks(data, gamma, dtype, runner, same_sign):
    a, W, b, R = as_dtype(dtype, *data)
    spec0 = ("epsilon", 1.0) if gamma is None else ("gamma", gamma, 1.0)
    assume(well_posed(spec0, a, W, b, False, dtype))
    d = L.apply_rule(spec0, a, W, b, R).d
    if same_sign:
        # the stabiliser takes eps R_j sgn(d_j) / (d_j + eps sgn(d_j))
        # = R_j eps / (|d_j| + eps): with all R_j >= 0 the bound is attained
        R = np.ascontiguousarray(np.abs(R), dtype=dtype)
    residuals, bounds = [], []
    for eps in EPS_LADDER:
        spec = ("epsilon", eps) if gamma is None else ("gamma", gamma, eps)
        exp = L.apply_rule(spec, a, W, b, R)
        R_in, (bias_s, stab_s, deg_s, n_deg) = RUNNERS[runner](spec, a, W, b, R, False)
        res = abs(R.astype(np.float64).sum() - R_in.astype(np.float64).sum())
        bound = sum(abs(float(r)) * eps / (abs(dj) + eps) for r, dj in zip(R, d))
        slack = TOL[dtype] * exp.share_mag + 1e-300
        assert res <= bound + slack, (eps, res, bound)
        assert bias_s == 0.0 or abs(bias_s) <= slack      # default mode
        assert n_deg == 0 and abs(deg_s) <= slack
        if same_sign:
            assert_close(res, bound, dtype, exp.share_mag, f"residual at eps={eps}")
        residuals.append((res, slack))
        bounds.append(bound)
    # the bound shrinks with eps ...
    assert all(x >= y * (1 - 1e-12) for x, y in zip(bounds, bounds[1:]))
    # ... and where no d_j is 0 the residual goes to 0 with it
    if np.all(d != 0):
        res, slack = residuals[-1]
        limit = sum(abs(float(r)) * 1e-8 / abs(dj) for r, dj in zip(R, d))
        assert res <= limit + slack
        if same_sign:
            assert all(x[0] >= y[0] - x[1] - y[1] for x, y in zip(residuals, residuals[1:]))


# --------------------------------------------------------------------------
# The shares add up (every rule, both modes)
# --------------------------------------------------------------------------

@st.composite
def any_layer(draw):
    n, m = draw(sizes), draw(sizes)
    return draw(vec(n)), draw(mat(n, m)), draw(vec(m)), draw(vec(m))


SPECS = st.one_of(
    st.sampled_from([1e-2, 0.5, 1e-6]).map(lambda e: ("epsilon", e)),
    st.tuples(st.just("gamma"), st.sampled_from([0.0, 0.25, 2.0]),
              st.sampled_from([1e-2, 0.3])),
    st.floats(1.0, 4.0).map(lambda al: ("alpha-beta", al)),
)


@given(data=any_layer(), spec=SPECS, absorb=st.booleans(), dtype=dtypes, runner=runners)
def test_shares_add_up(data, spec, absorb, dtype, runner):
    a, W, b, R = as_dtype(dtype, *data)
    assume(well_posed(spec, a, W, b, absorb, dtype))
    exp = L.apply_rule(spec, a, W, b, R, absorb)
    R_in, (bias_s, stab_s, deg_s, n_deg) = RUNNERS[runner](spec, a, W, b, R, absorb)
    lost = R.astype(np.float64).sum() - R_in.astype(np.float64).sum()
    assert_close(bias_s + stab_s + deg_s, lost, dtype, exp.share_mag, "shares sum")
    assert_close(bias_s, exp.bias_share, dtype, exp.share_mag, "bias share")
    assert_close(stab_s, exp.stabilizer_share, dtype, exp.share_mag, "stabilizer share")
    assert_close(deg_s, exp.degenerate_share, dtype, exp.share_mag, "degenerate share")
    assert n_deg == exp.degenerate
    assert_close(R_in, exp.R_in, dtype, exp.mag_in, "R_in")


@st.composite
def small_net(draw):
    dtype = draw(dtypes)
    widths = draw(st.lists(st.integers(1, 7), min_size=1, max_size=3))
    acts = draw(st.lists(st.sampled_from(["linear", "relu", "tanh", "sigmoid"]),
                         min_size=len(widths), max_size=len(widths)))
    n_in = draw(st.integers(1, 8))
    layers = [lf.Dense(w, activation=act) for w, act in zip(widths, acts)]
    layers.append(lf.Dense(draw(st.integers(1, 4)), activation="linear"))
    if draw(st.booleans()):
        layers.append(lf.SoftMax())
    seed = draw(st.integers(0, 2 ** 16))
    net = randomize_params(lf.Network((n_in,), layers, dtype=dtype, seed=seed), seed)
    x = np.random.default_rng(seed + 1).normal(size=n_in)
    return net, x


@settings(max_examples=30)
@given(netx=small_net(), rule=st.sampled_from(["epsilon", "gamma", "alpha-beta"]),
       absorb=st.booleans(), backend=st.sampled_from(["cython", "numpy"]))
def test_network_boundaries_add_up(netx, rule, absorb, backend):
    net, x = netx
    spec = {"epsilon": ("epsilon", 1e-2), "gamma": ("gamma", 0.25, 1e-2),
            "alpha-beta": ("alpha-beta", 2.0)}[rule]
    exp = L.walk(net, x, spec, absorb_bias=absorb)
    e = lf.explain(net, x, rule=rule, absorb_bias=absorb, backend=backend)
    assert e.explained_class == exp.explained_class
    assert_close(e.relevance, exp.relevance, net.dtype, exp.mag, "relevance")
    for b, xb in zip(e.boundaries, exp.boundaries):
        total = b.bias_share + b.stabilizer_share + b.degenerate_share
        assert_close(total, b.sum_out - b.sum_in, net.dtype,
                     xb["share_mag"] + xb["sum_in_mag"] + xb["sum_out_mag"],
                     f"boundary {b.index} shares")
        assert b.degenerate == xb["degenerate"]
        if rule != "alpha-beta" and not absorb and b.rule == rule:
            # the epsilon bound holds at every dense boundary
            bound = sum(abs(r) * 1e-2 / (abs(d) + 1e-2)
                        for r, d in zip(xb["R_out"], xb["d"]))
            assert b.residual <= bound + TOL[net.dtype] * (xb["share_mag"]
                                                           + xb["sum_in_mag"])


# --------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------

def _fingerprint(e):
    return (e.relevance.tobytes(), e.explained_class, e.logit, e.boundaries)


def _batch_fingerprint(b):
    return (b.relevance.tobytes(), b.explained_class.tobytes(),
            np.asarray(b.logits).tobytes(), b.residuals.tobytes(),
            tuple(b[i].boundaries for i in range(len(b))))


def _seed_net(dtype):
    return randomize_params(lf.Network(
        (1, 6, 6), [lf.Dense(16, activation="relu"), lf.Dense(12, activation="relu"),
                    lf.Dense(2, activation="linear"), lf.SoftMax()], dtype=dtype, seed=0))


@settings(max_examples=10)
@given(seed=st.integers(0, 2 ** 16), dtype=dtypes,
       rule=st.sampled_from(["epsilon", "gamma", "alpha-beta"]), absorb=st.booleans(),
       backend=st.sampled_from(["cython", "numpy"]))
def test_same_call_same_bytes(seed, dtype, rule, absorb, backend):
    net = _seed_net(dtype)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(1, 6, 6))
    X = rng.normal(size=(4, 1, 6, 6))
    kw = dict(rule=rule, absorb_bias=absorb, backend=backend)
    assert _fingerprint(lf.explain(net, x, **kw)) == _fingerprint(lf.explain(net, x, **kw))
    assert _batch_fingerprint(lf.explain_batch(net, X, **kw)) == \
        _batch_fingerprint(lf.explain_batch(net, X, **kw))


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_same_bytes_from_many_threads(dtype, backend):
    net = _seed_net(dtype)
    rng = np.random.default_rng(11)
    xs = rng.normal(size=(6, 1, 6, 6))
    X = rng.normal(size=(16, 1, 6, 6))
    rules = ["epsilon", "gamma", "alpha-beta",
             [lf.Gamma(gamma=0.5), "alpha-beta", lf.Epsilon(eps=0.1)]]
    jobs = [("one", i % len(xs), r) for i in range(6) for r in range(len(rules))]
    jobs += [("batch", None, r) for r in range(len(rules))] * 2

    def run(job):
        kind, i, r = job
        if kind == "one":
            return _fingerprint(lf.explain(net, xs[i], rule=rules[r], backend=backend))
        return _batch_fingerprint(lf.explain_batch(net, X, rule=rules[r], backend=backend))

    serial = [run(j) for j in jobs]
    # a net first explained from many threads at once (cold caches) ...
    fresh = _seed_net(dtype)
    net = fresh
    with ThreadPoolExecutor(max_workers=4) as pool:
        cold = list(pool.map(run, jobs))
    # ... and again, warm
    with ThreadPoolExecutor(max_workers=4) as pool:
        warm = list(pool.map(run, jobs))
    assert cold == serial
    assert warm == serial


def test_kernel_same_bytes_from_many_threads(dtype):
    rng = np.random.default_rng(12)
    n, m = 300, 200
    a = rng.normal(size=n).astype(dtype)
    W = rng.normal(size=(n, m)).astype(dtype)
    b = rng.normal(size=m).astype(dtype)
    R = rng.normal(size=m).astype(dtype)
    z = np.ascontiguousarray(a.astype(np.float64) @ W + b, dtype=dtype)

    def run(k):
        code, p1, p2 = [(0, 1e-2, 0.0), (0, 1e-2, 0.25), (1, 2.0, 1.0)][k % 3]
        R_in = np.zeros(n, dtype=dtype)
        shares = K.dense_backward(a, W, b, z, R, code, p1, p2, bool(k % 2), R_in)
        zo, out = np.zeros(m, dtype=dtype), np.zeros(m, dtype=dtype)
        K.dense_forward(a, W, b, 3, zo, out)
        return R_in.tobytes(), tuple(shares), zo.tobytes(), out.tobytes()

    serial = [run(k) for k in range(24)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(run, range(24))) == serial
