"""NumPy reference of lrpfast's math, written to be read (DESIGN §3).

Every function works on a batch: ``A`` of shape (B, n) holds the layer inputs,
``W`` of shape (n, m) the weights (``z = A @ W + b``), ``R`` of shape (B, m) the
relevance arriving from above.  The rules return ``(R_in, shares)`` where
``shares`` has shape (B, 4) in float64: the relevance absorbed by the bias, by
the stabiliser, lost at degenerate neurons, and the number of degenerate
neurons.  The first three add up to ``R.sum(1) - R_in.sum(1)``.

``lrpfast.explain(..., backend="numpy")`` runs these instead of the compiled
kernels, and the tests compare the two.
"""

from __future__ import annotations

import numpy as np

from .layers import ACTIVATIONS


def dense_forward(A, W, b, activation="linear"):
    """``Z = A @ W + b`` and ``Out = activation(Z)``."""
    Z = A @ W + b
    return Z, ACTIVATIONS[activation](Z)


def _sgn(x):
    """+1 where x >= 0, -1 elsewhere (zero counts as positive)."""
    return np.where(x >= 0, 1, -1).astype(x.dtype)


def epsilon(A, W, b, R, eps, absorb_bias=False):
    """LRP-epsilon: ``R_i = a_i Σ_j w_ij R_j / (d_j + eps·sgn(d_j))``.

    ``d_j = Σ_i a_i w_ij`` by default, ``z_j = d_j + b_j`` with ``absorb_bias``.
    """
    D = A @ W
    if absorb_bias:
        D = D + b
    stab = eps * _sgn(D)
    Q = R / (D + stab)
    R_in = A * (Q @ W.T)
    shares = np.zeros((A.shape[0], 4))
    if absorb_bias:
        shares[:, 0] = (Q.astype(np.float64) * b).sum(axis=1)
    shares[:, 1] = (Q.astype(np.float64) * stab).sum(axis=1)
    return R_in, shares


def gamma(A, W, b, R, gamma, eps, absorb_bias=False):
    """LRP-gamma: epsilon with ``w' = w + γ·max(w, 0)``, ``b' = b + γ·max(b, 0)``."""
    Wg = W + gamma * np.maximum(W, 0)
    bg = b + gamma * np.maximum(b, 0)
    return epsilon(A, Wg, bg, R, eps, absorb_bias)


def alpha_beta(A, W, b, R, alpha, absorb_bias=False, eps=0.0):
    """LRP-alpha-beta with ``β = α − 1`` (z-plus: ``α = 1``).

    ``c_ij = a_i w_ij``; ``P_j = Σ_i max(c_ij, 0)``, ``N_j = Σ_i min(c_ij, 0)``
    (plus ``max(b_j, 0)`` and ``min(b_j, 0)`` with ``absorb_bias``);
    ``R_i = Σ_j R_j (α max(c_ij, 0) / (P_j + eps) − β min(c_ij, 0) / (N_j − eps))``.
    A term with a zero ``P_j`` (or ``N_j``) is 0; its neuron, if ``R_j != 0``, is
    degenerate.  ``eps`` (default 0) is the optional stabiliser, with the sign
    of its denominator.
    """
    beta = alpha - 1.0
    Ap, An = np.maximum(A, 0), np.minimum(A, 0)
    Wp, Wn = np.maximum(W, 0), np.minimum(W, 0)
    # max(a w, 0) = a+ w+ + a- w-   and   min(a w, 0) = a+ w- + a- w+
    P = Ap @ Wp + An @ Wn
    N = Ap @ Wn + An @ Wp
    if absorb_bias:
        bp, bn = np.maximum(b, 0), np.minimum(b, 0)
        P, N = P + bp, N + bn
    else:
        bp = bn = np.zeros_like(b)
    stP, stN = eps * _sgn(P), eps * _sgn(N)
    with np.errstate(divide="ignore", invalid="ignore"):
        QP = np.where(P != 0, alpha * R / (P + stP), 0)
        QN = np.where(N != 0, beta * R / (N + stN), 0)
    R_in = Ap * (QP @ Wp.T) + An * (QP @ Wn.T) - Ap * (QN @ Wn.T) - An * (QN @ Wp.T)
    shares = np.zeros((A.shape[0], 4))
    R64 = R.astype(np.float64)
    shares[:, 0] = (QP * bp - QN * bn).astype(np.float64).sum(axis=1)
    shares[:, 1] = (QP * stP - QN * stN).astype(np.float64).sum(axis=1)
    degenerate = (R != 0) & ((P == 0) | ((N == 0) & (beta != 0)))
    reaching = alpha * (P != 0) - beta * (N != 0)
    shares[:, 2] = np.where(degenerate, R64 * (1 - reaching), 0).sum(axis=1)
    shares[:, 3] = degenerate.sum(axis=1)
    return R_in, shares


def w_square(A, W, b, R, eps, absorb_bias=False):
    """LRP-w²: ``R_i = Σ_j w_ij² R_j / (d_j + eps)``, ``d_j = Σ_i w_ij²`` (+ ``b_j²``)."""
    W2 = W * W
    d = W2.sum(axis=0)
    if absorb_bias:
        d = d + b * b
    Q = R / (d + eps)
    R_in = Q @ W2.T
    shares = np.zeros((R.shape[0], 4))
    if absorb_bias:
        shares[:, 0] = (Q.astype(np.float64) * (b * b)).sum(axis=1)
    shares[:, 1] = (Q.astype(np.float64) * eps).sum(axis=1)
    return R_in, shares


def flat(A, W, b, R):
    """LRP-flat: ``R_i = Σ_j R_j / n`` (the bias never enters)."""
    n = W.shape[0]
    R_in = np.repeat((R.sum(axis=1, dtype=np.float64) / n)[:, None], n, axis=1)
    return R_in.astype(R.dtype), np.zeros((R.shape[0], 4))


def z_box(A, W, b, R, low, high, eps):
    """LRP-z^B: ``c_ij = a_i w_ij − l_i w+_ij − h_i w-_ij``,
    ``R_i = Σ_j c_ij R_j / (d_j + eps·sgn(d_j))``, ``d_j = Σ_i c_ij`` (no bias)."""
    Wp, Wn = np.maximum(W, 0), np.minimum(W, 0)
    D = A @ W - low @ Wp - high @ Wn
    stab = eps * _sgn(D)
    Q = R / (D + stab)
    R_in = A * (Q @ W.T) - low * (Q @ Wp.T) - high * (Q @ Wn.T)
    shares = np.zeros((A.shape[0], 4))
    shares[:, 1] = (Q.astype(np.float64) * stab).sum(axis=1)
    return R_in, shares


def gamma_generalized(A, W, b, R, gamma, eps, absorb_bias=False):
    """Generalised gamma (zennit ``Gamma``): the sign of ``z = a @ W + b`` picks
    ``n_ij = c_ij + γ max(c_ij, 0)`` (z > 0) or ``c_ij + γ min(c_ij, 0)`` (z < 0);
    ``R_i = Σ_j n_ij R_j / (D_j + eps·sgn(D_j))``; z_j = 0 passes nothing."""
    Ap, An = np.maximum(A, 0), np.minimum(A, 0)
    Wp, Wn = np.maximum(W, 0), np.minimum(W, 0)
    Z = A @ W + b
    pos, neg = Z > 0, Z < 0
    P = Ap @ Wp + An @ Wn
    N = Ap @ Wn + An @ Wp
    D = A @ W + gamma * (np.where(pos, P, 0) + np.where(neg, N, 0))
    bias = np.where(pos, b + gamma * np.maximum(b, 0), 0) + \
        np.where(neg, b + gamma * np.minimum(b, 0), 0)
    if absorb_bias:
        D = D + bias
    stab = eps * _sgn(D)
    Q = np.where(pos | neg, R / (D + stab), 0)
    QP = (Q * (1 + gamma * pos)).astype(Q.dtype)     # multiplies max(c, 0)
    QN = (Q * (1 + gamma * neg)).astype(Q.dtype)     # multiplies min(c, 0)
    R_in = Ap * (QP @ Wp.T + QN @ Wn.T) + An * (QN @ Wp.T + QP @ Wn.T)
    shares = np.zeros((A.shape[0], 4))
    Q64 = Q.astype(np.float64)
    if absorb_bias:
        shares[:, 0] = (Q64 * bias).sum(axis=1)
    shares[:, 1] = (Q64 * stab).sum(axis=1)
    degenerate = (R != 0) & ~(pos | neg)
    shares[:, 2] = np.where(degenerate, R.astype(np.float64), 0).sum(axis=1)
    shares[:, 3] = degenerate.sum(axis=1)
    return R_in, shares


def dense_rule(rule, A, W, b, R, absorb_bias=False):
    """Apply a :class:`lrpfast.rules.Rule` object through the functions above."""
    return rule.reference(A, W, b, R, absorb_bias)
