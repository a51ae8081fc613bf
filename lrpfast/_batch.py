"""One dense boundary for a batch: BLAS products plus fused Cython element-wise loops.

Each function returns ``(R_in, shares, total)``: the relevance at the layer
input (B, n), the shares (B, 4: bias, stabiliser, degenerate, number of
degenerate neurons) and Σ R_in per row in float64.  ``A`` is the layer input
(B, n), ``S = A @ W`` the bias-free forward product the network computed
anyway, ``R`` the relevance from above (B, m).  ``cache`` is the per-network
dict of derived weights (emptied when a parameter changes).

The element-wise kernels run on one thread.  They are memory-bound (0.7 ms
for 1024 x 1024 values), and OpenMP threads woken between two BLAS calls
wait for BLAS's own spinning threads: on the 2-core machine of the README
the same kernel took 8 ms on two threads right after a matmul.
"""

from __future__ import annotations

import numpy as np

from ._dispatch import kernels as _kernels

# |N| below this fraction of P is recomputed exactly (see alpha_beta).
_CANCEL = 1.0 / 16


def _derived(cache, layer, build, *extra):
    """``build(layer.weight, *extra)``, cached per layer and arguments.

    ``build`` is one of the functions below (or any function of the weights):
    a rule that needs other derived weights passes its own, with no branch
    here.
    """
    key = (build, id(layer)) + extra
    val = cache.get(key)
    if val is None:
        val = cache[key] = build(layer.weight, *extra)
    return val


def gamma_weight(W, gamma):
    """``W + γ max(W, 0)``."""
    return W + W.dtype.type(gamma) * np.maximum(W, 0)


def split_weight(W):
    """``(max(W, 0), min(W, 0))``."""
    return np.maximum(W, 0), np.minimum(W, 0)


def square_weight(W):
    """``(W², Σ_i W²_ij)``."""
    W2 = W * W
    return W2, W2.sum(axis=0)


def _prep(A, R):
    return np.ascontiguousarray(A), np.ascontiguousarray(R)


def epsilon(cache, layer, A, S, R, absorb_bias, eps, gamma):
    """Epsilon (gamma = 0) and gamma: 1 + 1 products (gamma: 2 + 1)."""
    A, R = _prep(A, R)
    B = R.shape[0]
    shares, total = np.zeros((B, 4)), np.empty(B)
    if gamma != 0:
        Wg = _derived(cache, layer, gamma_weight, gamma)
        D = A @ Wg                                    # s' = a @ W'
    else:
        Wg, D = layer.weight, S
    Q = np.empty_like(D)
    _kernels.epsilon_q(np.ascontiguousarray(D), layer.bias, R, eps, gamma, absorb_bias,
                       Q, np.empty_like(D), shares)
    R_in = Q @ Wg.T                                   # R_in = a * (Q @ W'.T)
    _kernels.mul_row_sums(R_in, A, total)
    return R_in, shares, total


def _split_forward(cache, layer, A, S, need_n):
    """``P = Σ_i max(a_i w_ij, 0)`` and ``N = Σ_i min(a_i w_ij, 0)`` per row.

    ``N = S − P`` (``s = P + N`` for any input), so ``N`` costs no product.
    Where ``|N|`` is below ``P/16`` the subtraction cancels too many digits,
    so those columns are recomputed exactly (an exact 0 must stay 0: it makes
    a neuron degenerate); on trained networks that is rare.
    """
    Wp, Wn = _derived(cache, layer, split_weight)
    nonneg = not (A < 0).any()
    if nonneg:
        P = A @ Wp                                    # P = a @ W+
    else:
        Ap, An = np.maximum(A, 0), np.minimum(A, 0)
        P = Ap @ Wp                                   # P = a+ @ W+ + a- @ W-
        P += An @ Wn
    if not need_n:
        return P, P, nonneg
    N = S - P                                         # N = a @ W- (+ a- @ W+)
    bad = np.abs(N) < P * P.dtype.type(_CANCEL)
    cols = np.flatnonzero(bad.any(axis=0))
    if cols.size:
        if nonneg:
            N[:, cols] = A @ Wn[:, cols]
        else:
            N[:, cols] = Ap @ Wn[:, cols] + An @ Wp[:, cols]
    return P, N, nonneg


def _split_backward(cache, layer, A, QP, QN, nonneg, total, beta_zero=False):
    """``R_in_i = Σ_j (c+_ij qp_j + c-_ij qn_j)``, c = a w: 2 products for a >= 0."""
    Wp, Wn = _derived(cache, layer, split_weight)
    if nonneg:
        R_in = QP @ Wp.T                              # R_in = a * (QP @ W+.T + QN @ W-.T)
        if not beta_zero:
            R_in += QN @ Wn.T
        _kernels.mul_row_sums(R_in, A, total)
    else:
        Ap, An = np.maximum(A, 0), np.minimum(A, 0)
        if beta_zero:
            R_in = Ap * (QP @ Wp.T) + An * (QP @ Wn.T)
        else:
            R_in = Ap * (QP @ Wp.T + QN @ Wn.T) + An * (QN @ Wp.T + QP @ Wn.T)
        _kernels.row_sums(R_in, total)
    return R_in


def alpha_beta(cache, layer, A, S, R, absorb_bias, alpha, beta, eps):
    """Alpha-beta: 2 + 2 products for a >= 0 (z-plus, beta = 0: 2 + 1)."""
    A, R = _prep(A, R)
    B = R.shape[0]
    shares, total = np.zeros((B, 4)), np.empty(B)
    P, N, nonneg = _split_forward(cache, layer, A, S, beta != 0)
    QP, QN = np.empty_like(P), np.empty_like(P)
    _kernels.alpha_beta_q(P, N, layer.bias, R, alpha, beta, absorb_bias, QP, QN, shares,
                          1, eps)
    R_in = _split_backward(cache, layer, A, QP, QN, nonneg, total, beta == 0)
    return R_in, shares, total


def gamma_generalized(cache, layer, A, S, R, absorb_bias, gamma, eps):
    """Generalised gamma: 3 + 2 products for a >= 0 (S, P, N; two backward)."""
    A, R = _prep(A, R)
    B = R.shape[0]
    shares, total = np.zeros((B, 4)), np.empty(B)
    P, N, nonneg = _split_forward(cache, layer, A, S, True)
    QP, QN = np.empty_like(P), np.empty_like(P)
    _kernels.gamma_gen_q(np.ascontiguousarray(S), P, N, layer.bias, R, gamma, eps,
                         absorb_bias, QP, QN, shares)
    R_in = _split_backward(cache, layer, A, QP, QN, nonneg, total)
    return R_in, shares, total


def w_square_denominator(layer, absorb_bias):
    """``d_j = Σ_i w_ij²`` (+ ``b_j²`` with ``absorb_bias``)."""
    W = layer.weight
    d = (W * W).sum(axis=0)
    if absorb_bias:
        d = d + layer.bias * layer.bias
    return np.ascontiguousarray(d)


def w_square(cache, layer, R, absorb_bias, eps):
    """w²: ``R_in = (R / (d + eps)) @ (W²).T``: no forward product, 1 backward."""
    R = np.ascontiguousarray(R)
    B = R.shape[0]
    shares, total = np.zeros((B, 4)), np.empty(B)
    W2, d = _derived(cache, layer, square_weight)
    b2 = layer.bias * layer.bias
    if absorb_bias:
        d = d + b2
    Q = R / (d + d.dtype.type(eps))                  # q = R / (d + eps)
    R_in = Q @ W2.T                                   # R_in = q @ (W²).T
    Q64 = Q.astype(np.float64)
    if absorb_bias:
        shares[:, 0] = Q64 @ b2.astype(np.float64)   # Σ_j b_j² q_j
    shares[:, 1] = eps * Q64.sum(axis=1)              # Σ_j eps q_j
    _kernels.row_sums(R_in, total)
    return R_in, shares, total


def flat(layer, R):
    """Flat: ``R_in_i = Σ_j R_j / n``: no product at all beyond the forward."""
    B = R.shape[0]
    n = layer.n_in
    tot = R.sum(axis=1, dtype=np.float64)
    R_in = np.empty((B, n), dtype=R.dtype)
    R_in[:] = (tot / n).astype(R.dtype)[:, None]
    total = np.empty(B)
    _kernels.row_sums(R_in, total)
    return R_in, np.zeros((B, 4)), total


def z_box_offset(layer, low, high):
    """``o_j = Σ_i (l_i max(w_ij, 0) + h_i min(w_ij, 0))`` (so ``d = s - o``)."""
    W = layer.weight
    return np.ascontiguousarray(low @ np.maximum(W, 0) + high @ np.minimum(W, 0))


def z_box(cache, layer, A, S, R, low, high, eps):
    """z-box: ``d = s - o`` (o cached), 2 backward products."""
    A, R = _prep(A, R)
    B = R.shape[0]
    shares, total = np.zeros((B, 4)), np.empty(B)
    key = ("zbox", id(layer), low.tobytes(), high.tobytes())
    off = cache.get(key)
    if off is None:
        off = cache[key] = z_box_offset(layer, low, high)
    D = S - off                                       # d = s - l @ W+ - h @ W-
    Q = np.empty_like(D)
    _kernels.epsilon_q(D, np.zeros_like(layer.bias), R, eps, 0.0, False, Q,
                       np.empty_like(D), shares)
    Wp, Wn = _derived(cache, layer, split_weight)
    U = Q @ Wp.T                                      # U = q @ W+.T
    V = Q @ Wn.T                                      # V = q @ W-.T
    R_in = (A - low) * U
    R_in += (A - high) * V                            # (a - l) U + (a - h) V
    _kernels.row_sums(R_in, total)
    return R_in, shares, total
