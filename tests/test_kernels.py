"""Single-layer kernels (compiled and NumPy reference) against the loops.

Every kernel is compared with the literal per-(i, j) double loops of
``_loops`` on random shapes, both dtypes, signed and non-negative inputs,
zero and non-zero bias, both bias modes and all three rules.
"""

import itertools
import zlib

import numpy as np
import pytest

import _loops as L
from conftest import DTYPES, TOL, assert_close, make_dense_data

from lrpfast import _kernels as K
from lrpfast import reference
from lrpfast.layers import ACT_CODES

ACTS = ("linear", "relu", "tanh", "sigmoid")
SHAPES = ((1, 1), (6, 4), (40, 23), (17, 40))
RULES = (
    ("epsilon", 1e-2), ("epsilon", 0.5), ("epsilon", 1e-7),
    ("gamma", 0.25, 1e-2), ("gamma", 1.0, 0.1), ("gamma", 0.0, 1e-2),
    ("alpha-beta", 2.0), ("alpha-beta", 1.0), ("alpha-beta", 1.5),
)
ids = lambda spec: "-".join(str(v) for v in spec)


def _kernel_args(spec):
    """(code, p1, p2) of ``K.dense_backward`` for a loop spec."""
    if spec[0] == "epsilon":
        return 0, spec[1], 0.0
    if spec[0] == "gamma":
        return 0, spec[2], spec[1]
    return 1, spec[1], spec[1] - 1.0


def _reference(spec, A, W, b, R, absorb):
    if spec[0] == "epsilon":
        return reference.epsilon(A, W, b, R, spec[1], absorb_bias=absorb)
    if spec[0] == "gamma":
        return reference.gamma(A, W, b, R, spec[1], spec[2], absorb_bias=absorb)
    return reference.alpha_beta(A, W, b, R, spec[1], absorb_bias=absorb)


def _case_rng(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def test_activation_codes_follow_the_contract():
    assert ACT_CODES == {"linear": 0, "relu": 1, "tanh": 2, "sigmoid": 3}


# --------------------------------------------------------------------------
# Forward
# --------------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("inputs", ["signed", "nonneg"])
@pytest.mark.parametrize("bias", ["zero", "signed"])
@pytest.mark.parametrize("act", ACTS)
def test_kernel_dense_forward_matches_loops(dtype, act, bias, inputs, shape):
    n, m = shape
    a, W, b, _ = make_dense_data(_case_rng("fwd", act, bias, inputs, shape), n, m,
                                 dtype, inputs=inputs, bias=bias)
    # large pre-activations too, to reach the saturated parts of tanh/sigmoid
    a = np.ascontiguousarray(a * 4, dtype=dtype)
    z_exp, out_exp, mag = L.dense_forward(a, W, b, act)
    z = np.full(m, 7.0, dtype=dtype)      # outputs must be overwritten
    out = np.full(m, -7.0, dtype=dtype)
    before = [v.tobytes() for v in (a, W, b)]
    K.dense_forward(a, W, b, ACT_CODES[act], z, out)
    assert [v.tobytes() for v in (a, W, b)] == before
    assert_close(z, z_exp, dtype, mag, "z")
    assert_close(out, out_exp, dtype, mag, "out")


@pytest.mark.parametrize("act", ACTS)
def test_reference_dense_forward_matches_loops(dtype, act):
    rng = _case_rng("ref-fwd", act)
    n, m, B = 13, 7, 4
    A = rng.normal(size=(B, n)).astype(dtype)
    A[1] = np.maximum(A[1], 0)
    A[2] = 0
    W = (rng.normal(size=(n, m)) / 3).astype(dtype)
    b = rng.normal(size=m).astype(dtype)
    Z, Out = reference.dense_forward(A, W, b, act)
    assert Z.shape == Out.shape == (B, m)
    for r in range(B):
        z_exp, out_exp, mag = L.dense_forward(A[r], W, b, act)
        assert_close(Z[r], z_exp, dtype, mag, f"Z[{r}]")
        assert_close(Out[r], out_exp, dtype, mag, f"Out[{r}]")


# --------------------------------------------------------------------------
# Backward: one dense boundary
# --------------------------------------------------------------------------

def _check_layer(R_in, shares, exp, R, dtype, what):
    """Compare a kernel's R_in and shares with a loop LayerResult."""
    assert_close(R_in, exp.R_in, dtype, exp.mag_in, f"{what} R_in")
    bias_s, stab_s, deg_s, n_deg = (float(v) for v in shares)
    assert_close(bias_s, exp.bias_share, dtype, exp.share_mag, f"{what} bias_share")
    assert_close(stab_s, exp.stabilizer_share, dtype, exp.share_mag,
                 f"{what} stabilizer_share")
    assert_close(deg_s, exp.degenerate_share, dtype, exp.share_mag,
                 f"{what} degenerate_share")
    assert n_deg == exp.degenerate, f"{what}: {n_deg} degenerate, expected {exp.degenerate}"
    # the shares account for everything that did not reach the input
    lost = float(np.sum(np.asarray(R, np.float64))) - float(np.sum(np.asarray(R_in, np.float64)))
    assert_close(bias_s + stab_s + deg_s, lost, dtype, exp.share_mag,
                 f"{what} shares sum vs sum_out - sum_in")


CASES = list(itertools.product(RULES, (False, True), ("zero", "signed"),
                               ("signed", "nonneg"), SHAPES))


@pytest.mark.parametrize("spec,absorb,bias,inputs,shape", CASES,
                         ids=[f"{ids(c[0])}-absorb{c[1]}-bias_{c[2]}-{c[3]}-{c[4][0]}x{c[4][1]}"
                              for c in CASES])
def test_kernel_dense_backward_matches_loops(dtype, spec, absorb, bias, inputs, shape):
    n, m = shape
    a, W, b, R = make_dense_data(_case_rng("bwd", spec, absorb, bias, inputs, shape),
                                 n, m, dtype, inputs=inputs, bias=bias,
                                 zero_column=m >= 4)
    z = np.ascontiguousarray(L.dense_forward(a, W, b)[0], dtype=dtype)
    exp = L.apply_rule(spec, a, W, b, R, absorb)
    R_in = np.full(n, 123.0, dtype=dtype)     # must be overwritten, not added to
    before = [v.tobytes() for v in (a, W, b, z, R)]
    code, p1, p2 = _kernel_args(spec)
    shares = K.dense_backward(a, W, b, z, R, code, p1, p2, absorb, R_in)
    assert [v.tobytes() for v in (a, W, b, z, R)] == before, "kernel wrote its inputs"
    assert len(shares) == 4
    assert float(shares[3]) == int(shares[3])
    _check_layer(R_in, shares, exp, R, dtype, "K.dense_backward")


@pytest.mark.parametrize("spec,absorb,bias,inputs,shape", CASES,
                         ids=[f"{ids(c[0])}-absorb{c[1]}-bias_{c[2]}-{c[3]}-{c[4][0]}x{c[4][1]}"
                              for c in CASES])
def test_reference_rules_match_loops(dtype, spec, absorb, bias, inputs, shape):
    n, m = shape
    rng = _case_rng("ref", spec, absorb, bias, inputs, shape)
    a, W, b, R = make_dense_data(rng, n, m, dtype, inputs=inputs, bias=bias,
                                 zero_column=m >= 4)
    # three rows: the probe, another one, and an all-zero input
    a2, _, _, R2 = make_dense_data(rng, n, m, dtype, inputs=inputs, R_zero=False)
    A = np.stack([a, a2, np.zeros_like(a)])
    Rb = np.stack([R, R2, R2])
    before = [v.tobytes() for v in (A, W, b, Rb)]
    R_in, shares = _reference(spec, A, W, b, Rb, absorb)
    assert [v.tobytes() for v in (A, W, b, Rb)] == before, "reference wrote its inputs"
    shares = np.asarray(shares)
    assert np.shape(R_in) == (3, n)
    assert shares.shape == (3, 4) and shares.dtype == np.float64
    for r in range(3):
        exp = L.apply_rule(spec, A[r], W, b, Rb[r], absorb)
        _check_layer(R_in[r], shares[r], exp, Rb[r], dtype, f"reference row {r}")


# --------------------------------------------------------------------------
# Hand-checked small cases (the loops themselves are checked here)
# --------------------------------------------------------------------------

def test_loops_epsilon_hand_example():
    # one neuron: d = 1*2 + 3*(-1) = -1, den = -1 - 0.5 = -1.5
    res = L.epsilon([1.0, 3.0], [[2.0], [-1.0]], [0.0], [3.0], 0.5)
    np.testing.assert_allclose(res.R_in, [2.0 * 3 / -1.5, -3.0 * 3 / -1.5])
    assert res.stabilizer_share == pytest.approx(-0.5 * 3 / -1.5)
    # absorb: d = -1 + 4 = 3, den = 3.5; bias share = 4 * 3 / 3.5
    res = L.epsilon([1.0, 3.0], [[2.0], [-1.0]], [4.0], [3.0], 0.5, absorb_bias=True)
    np.testing.assert_allclose(res.R_in, [2.0 * 3 / 3.5, -3.0 * 3 / 3.5])
    assert res.bias_share == pytest.approx(4 * 3 / 3.5)
    # sgn(0) = +1
    res = L.epsilon([0.0], [[1.0]], [0.0], [2.0], 0.25)
    assert res.stabilizer_share == pytest.approx(2.0)


def test_loops_alpha_beta_hand_example():
    # c = [2, -1, 3]: P = 5, N = -1; alpha 2, beta 1; R = 4
    res = L.alpha_beta([1.0, 1.0, 1.0], [[2.0], [-1.0], [3.0]], [0.0], [4.0], 2.0)
    np.testing.assert_allclose(res.R_in, [4 * 2 * 2 / 5, -4 * 1 * 1, 4 * 2 * 3 / 5])
    assert res.degenerate == 0
    # all negative: P = 0, degenerate, lost = R (1 - 0 + beta) = 4 * 2
    res = L.alpha_beta([1.0, 1.0], [[-2.0], [-1.0]], [0.0], [4.0], 2.0)
    assert res.degenerate == 1
    assert res.degenerate_share == pytest.approx(8.0)
    assert 4.0 - res.R_in.sum() == pytest.approx(8.0)
    # all positive with alpha = 1 (beta = 0): not degenerate
    res = L.alpha_beta([1.0, 1.0], [[2.0], [1.0]], [0.0], [4.0], 1.0)
    assert res.degenerate == 0 and res.R_in.sum() == pytest.approx(4.0)


def test_tolerance_table_is_per_dtype():
    assert set(TOL) == set(DTYPES)
    assert TOL[np.dtype(np.float64)] <= 1e-10 and TOL[np.dtype(np.float32)] <= 1e-4


@pytest.mark.parametrize("absorb", [False, True])
@pytest.mark.parametrize("backend", ["kernel", "reference"])
def test_zero_denominator_counts_as_positive(dtype, backend, absorb):
    """sgn(0) = +1: a denominator that is exactly 0 is stabilised by +eps.

    Column 0 sums to exactly 0 without the bias, column 1 to exactly 0 with
    it, each from non-zero contributions, so the sign of the stabiliser shows
    in R_in (not only in the shares).
    """
    a = np.array([1.0, 2.0, 0.5], dtype=dtype)
    W = np.array([[1.0, 0.5], [-0.75, 0.25], [1.0, 1.0]], dtype=dtype)
    b = np.array([0.0, -1.5], dtype=dtype)
    R = np.array([1.0, 2.0], dtype=dtype)
    eps = 0.25
    # expectations by hand (all inputs are exact in float32 too)
    a64, W64 = a.astype(np.float64), W.astype(np.float64)
    if absorb:    # d = [0, 0]: both columns divide by +eps
        exp = (a64 * W64[:, 0] * 1.0 + a64 * W64[:, 1] * 2.0) / eps
    else:         # d = [0, 1.5]
        exp = a64 * W64[:, 0] * 1.0 / eps + a64 * W64[:, 1] * 2.0 / (1.5 + eps)
    loop = L.epsilon(a, W, b, R, eps, absorb_bias=absorb)
    np.testing.assert_allclose(loop.R_in, exp, rtol=1e-15)
    if backend == "kernel":
        z = np.ascontiguousarray(a @ W + b)
        R_in = np.zeros(3, dtype=dtype)
        K.dense_backward(a, W, b, z, R, 0, eps, 0.0, absorb, R_in)
    else:
        R_in = reference.epsilon(a[None], W, b, R[None], eps, absorb_bias=absorb)[0][0]
    assert_close(R_in, exp, dtype, np.abs(exp), "R_in")


@pytest.mark.parametrize("absorb", (False, True))
def test_alpha_beta_negative_sum_from_s_minus_p(dtype, absorb):
    # The kernels take N = s - P from the forward's sums (one product less) and
    # sum a column again where that subtraction cancels (|N| < P/16).  Column
    # 0 has no negative contribution (N = 0 exactly: a degenerate neuron for
    # beta != 0), column 1 one tiny negative one (N ~ -1e-6 P), column 2 is
    # mixed; all must match the double loop, in both paths.
    rng = np.random.default_rng(7)
    n, m = 30, 3
    a = rng.uniform(0.1, 1.0, n).astype(dtype)
    W = rng.normal(0, 1, (n, m)).astype(dtype)
    W[:, :2] = np.abs(W[:, :2])
    W[3, 1] = -1e-6
    b = rng.normal(0, 0.1, m).astype(dtype)
    R = np.array([1.0, -0.5, 2.0], dtype=dtype)
    exp = L.apply_rule(("alpha-beta", 2.0), a, W, b, R, absorb)
    assert exp.degenerate == (0 if absorb and b[0] < 0 else 1)
    z = np.ascontiguousarray(L.dense_forward(a, W, b)[0], dtype=dtype)
    R_in = np.empty(n, dtype=dtype)
    shares = K.dense_backward(a, W, b, z, R, 1, 2.0, 1.0, absorb, R_in)
    _check_layer(R_in, shares, exp, R, dtype, "K.dense_backward")
    import lrpfast as lf
    net = lf.Network((n,), [lf.Dense(m)], dtype=dtype)
    net.layers[0].weight, net.layers[0].bias = W, b
    e = lf.explain(net, a, rule="alpha-beta", output_relevance=R, absorb_bias=absorb)
    bt = lf.explain_batch(net, a[None], rule="alpha-beta", output_relevance=R[None],
                          absorb_bias=absorb)
    for got, what in ((e, "explain"), (bt[0], "explain_batch")):
        assert_close(got.relevance, exp.R_in, dtype, exp.mag_in, f"{what} R_in")
        assert got.boundaries[0].degenerate == exp.degenerate, what
