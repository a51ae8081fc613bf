"""Independent reference of DESIGN section 3: literal per-(i, j) loops.

Written from the design text alone (not from ``lrpfast.reference``), in
float64 with plain Python floats, so that the tests compare lrpfast against a
second implementation of the math.  Every rule also propagates a *magnitude*
alongside the relevance: an upper bound of the size of the terms that make up
each value, multiplied by the conditioning of its denominator.  The tests
scale their tolerances with it (``tol * (|expected| + magnitude)``), so that
float32 results are judged by their own rounding and not by a blanket atol.

Rule specs for :func:`walk` are tuples, one per Dense layer, input side first:
``("epsilon", eps)``, ``("gamma", gamma, eps)``, ``("alpha-beta", alpha)`` or
``("alpha-beta", alpha, eps)``, ``("z-plus",)``, ``("w-square", eps)``,
``("flat",)``, ``("z-box", low, high, eps)`` (bounds: flat arrays of the layer
input), ``("gamma-generalized", gamma, eps)`` (DESIGN section 3b).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def sgn(x):
    """+1 for x >= 0 (zero counts as positive), -1 otherwise."""
    return 1.0 if x >= 0 else -1.0


def activate(name, z):
    if name == "linear":
        return z
    if name == "relu":
        return z if z > 0 else 0.0
    if name == "tanh":
        return math.tanh(z)
    if name == "sigmoid":
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)
    raise ValueError(name)


def _vec(x):
    return [float(v) for v in np.asarray(x, dtype=np.float64).ravel()]


def _mat(W):
    return np.asarray(W, dtype=np.float64).tolist()


# --------------------------------------------------------------------------
# Dense forward
# --------------------------------------------------------------------------

def dense_forward(a, W, b, activation="linear"):
    """``z_j = Σ_i a_i w_ij + b_j``, ``out_j = act(z_j)``.

    Returns ``(z, out, mag)`` where ``mag_j = Σ_i |a_i w_ij| + |b_j|``.
    """
    a, W, b = _vec(a), _mat(W), _vec(b)
    n, m = len(a), len(b)
    z, out, mag = [], [], []
    for j in range(m):
        s = 0.0
        g = abs(b[j])
        for i in range(n):
            s += a[i] * W[i][j]
            g += abs(a[i] * W[i][j])
        z.append(s + b[j])
        out.append(activate(activation, s + b[j]))
        mag.append(g)
    return np.array(z), np.array(out), np.array(mag)


# --------------------------------------------------------------------------
# Rules for one dense layer and one probe
# --------------------------------------------------------------------------

@dataclass
class LayerResult:
    """Relevance at the layer input and where the rest of it went."""

    R_in: np.ndarray
    bias_share: float
    stabilizer_share: float
    degenerate_share: float
    degenerate: int
    mag_in: np.ndarray          # tolerance scale of each R_in[i]
    share_mag: float            # tolerance scale of the shares and of Σ R_in
    d: np.ndarray = field(default=None)   # epsilon/gamma denominators d_j (before eps)

    @property
    def shares(self):
        return (self.bias_share, self.stabilizer_share, self.degenerate_share,
                self.degenerate)


def epsilon(a, W, b, R, eps, absorb_bias=False, M=None):
    """``R_i = a_i Σ_j w_ij R_j / (d_j + eps·sgn(d_j))``, d_j = s_j or z_j."""
    a, W, b, R = _vec(a), _mat(W), _vec(b), _vec(R)
    M = [abs(r) for r in R] if M is None else _vec(M)
    eps = float(eps)
    n, m = len(a), len(R)
    R_in = [0.0] * n
    mag_in = [0.0] * n
    bias_share = 0.0
    stab_share = 0.0
    share_mag = 0.0
    ds = []
    for j in range(m):
        s = 0.0
        size = abs(b[j])
        for i in range(n):
            s += a[i] * W[i][j]
            size += abs(a[i] * W[i][j])
        d = s + b[j] if absorb_bias else s
        den = d + eps * sgn(d)
        cond = 1.0 + size / abs(den)
        q = R[j] / den
        qm = M[j] / abs(den) * cond
        for i in range(n):
            R_in[i] += a[i] * W[i][j] * q
            mag_in[i] += abs(a[i] * W[i][j]) * qm
        if absorb_bias:
            bias_share += b[j] * q
        stab_share += eps * sgn(d) * q
        share_mag += (abs(b[j]) + eps + size) * qm + M[j]
        ds.append(d)
    return LayerResult(np.array(R_in), bias_share, stab_share, 0.0, 0,
                       np.array(mag_in), share_mag + sum(mag_in), np.array(ds))


def gamma(a, W, b, R, gamma, eps, absorb_bias=False, M=None):
    """Epsilon with ``w' = w + γ·max(w, 0)`` and ``b' = b + γ·max(b, 0)``."""
    Wl, bl = _mat(W), _vec(b)
    g = float(gamma)
    Wp = [[w + g * max(w, 0.0) for w in row] for row in Wl]
    bp = [v + g * max(v, 0.0) for v in bl]
    return epsilon(a, Wp, bp, R, eps, absorb_bias=absorb_bias, M=M)


def alpha_beta(a, W, b, R, alpha, absorb_bias=False, M=None, eps=0.0):
    """``R_i = Σ_j R_j (α c+_ij / P'_j − β c-_ij / N'_j)``, β = α − 1.

    ``P'_j = P_j + eps·sgn(P_j)`` and ``N'_j = N_j + eps·sgn(N_j)`` (eps = 0:
    the plain rule).  A term with a zero P_j (or N_j) is 0; a neuron with
    R_j != 0 and P_j == 0, or N_j == 0 with β != 0, is degenerate and its lost
    relevance ``R_j (1 − α[P_j≠0] + β[N_j≠0])`` is the degenerate share.
    Whatever else the stabiliser keeps from the inputs is the stabiliser share.
    """
    a, W, b, R = _vec(a), _mat(W), _vec(b), _vec(R)
    M = [abs(r) for r in R] if M is None else _vec(M)
    eps = float(eps)
    stab_share = 0.0
    alpha = float(alpha)
    beta = alpha - 1.0
    n, m = len(a), len(R)
    R_in = [0.0] * n
    mag_in = [0.0] * n
    bias_share = 0.0
    deg_share = 0.0
    n_deg = 0
    share_mag = 0.0
    for j in range(m):
        P = 0.0
        N = 0.0
        for i in range(n):
            c = a[i] * W[i][j]
            P += max(c, 0.0)
            N += min(c, 0.0)
        if absorb_bias:
            P += max(b[j], 0.0)
            N += min(b[j], 0.0)
        Ps = P + eps * sgn(P)
        Ns = N + eps * sgn(N)
        for i in range(n):
            c = a[i] * W[i][j]
            ratio = 0.0
            size = 0.0
            if P != 0.0:
                ratio += alpha * max(c, 0.0) / Ps
                size += alpha * max(c, 0.0) / Ps
            if N != 0.0:
                ratio -= beta * min(c, 0.0) / Ns
                size += beta * min(c, 0.0) / Ns
            R_in[i] += R[j] * ratio
            mag_in[i] += M[j] * size
        if R[j] != 0.0 and (P == 0.0 or (N == 0.0 and beta != 0.0)):
            n_deg += 1
            deg_share += R[j] * (1.0 - alpha * (P != 0.0) + beta * (N != 0.0))
        if absorb_bias:
            if P != 0.0:
                bias_share += R[j] * alpha * max(b[j], 0.0) / Ps
            if N != 0.0:
                bias_share -= R[j] * beta * min(b[j], 0.0) / Ns
        if P != 0.0:
            stab_share += R[j] * alpha * (eps * sgn(P)) / Ps
        if N != 0.0:
            stab_share -= R[j] * beta * (eps * sgn(N)) / Ns
        share_mag += M[j] * (2.0 + 2.0 * alpha + 2.0 * beta)
    return LayerResult(np.array(R_in), bias_share, stab_share, deg_share, n_deg,
                       np.array(mag_in), share_mag + sum(mag_in))


def z_plus(a, W, b, R, absorb_bias=False, M=None):
    """z+: ``R_i = Σ_j R_j c+_ij / P_j`` with ``c+_ij = max(a_i w_ij, 0)``,
    ``P_j = Σ_i c+_ij`` (+ ``max(b_j, 0)``); a zero P_j passes nothing and is
    degenerate when R_j != 0.  Written out, not through :func:`alpha_beta`."""
    a, W, b, R = _vec(a), _mat(W), _vec(b), _vec(R)
    M = [abs(r) for r in R] if M is None else _vec(M)
    n, m = len(a), len(R)
    R_in, mag_in = [0.0] * n, [0.0] * n
    bias_share = deg_share = share_mag = 0.0
    n_deg = 0
    for j in range(m):
        P = sum(max(a[i] * W[i][j], 0.0) for i in range(n))
        if absorb_bias:
            P += max(b[j], 0.0)
        if P == 0.0:
            if R[j] != 0.0:
                n_deg += 1
                deg_share += R[j]
            continue
        for i in range(n):
            cp = max(a[i] * W[i][j], 0.0)
            R_in[i] += R[j] * cp / P
            mag_in[i] += M[j] * 2.0 * cp / P
        if absorb_bias:
            bias_share += R[j] * max(b[j], 0.0) / P
        share_mag += 4.0 * M[j]
    return LayerResult(np.array(R_in), bias_share, 0.0, deg_share, n_deg,
                       np.array(mag_in), share_mag + sum(mag_in))


def w_square(a, W, b, R, eps, absorb_bias=False, M=None):
    """w²: ``R_i = Σ_j w_ij² R_j / (d_j + eps)``, ``d_j = Σ_i w_ij²`` (+ ``b_j²``)."""
    W, b, R = _mat(W), _vec(b), _vec(R)
    M = [abs(r) for r in R] if M is None else _vec(M)
    n, m, eps = len(W), len(R), float(eps)
    R_in, mag_in = [0.0] * n, [0.0] * n
    bias_share = stab_share = share_mag = 0.0
    for j in range(m):
        d = sum(W[i][j] ** 2 for i in range(n))
        if absorb_bias:
            d += b[j] ** 2
        q = R[j] / (d + eps)
        qm = M[j] / (d + eps) * 2.0
        for i in range(n):
            R_in[i] += W[i][j] ** 2 * q
            mag_in[i] += W[i][j] ** 2 * qm
        if absorb_bias:
            bias_share += b[j] ** 2 * q
        stab_share += eps * q
        share_mag += M[j] * 3.0
    return LayerResult(np.array(R_in), bias_share, stab_share, 0.0, 0,
                       np.array(mag_in), share_mag + sum(mag_in))


def flat(a, W, b, R, M=None):
    """flat: ``R_i = Σ_j R_j / n``; the bias never enters."""
    n, R = len(_mat(W)), _vec(R)
    M = [abs(r) for r in R] if M is None else _vec(M)
    total = math.fsum(R)
    size = sum(M) + sum(abs(r) for r in R)
    return LayerResult(np.full(n, total / n), 0.0, 0.0, 0.0, 0,
                       np.full(n, size / n), 2.0 * size)


def z_box(a, W, b, R, low, high, eps, M=None):
    """z^B: ``c_ij = a_i w_ij − l_i max(w_ij, 0) − h_i min(w_ij, 0)``,
    ``R_i = Σ_j c_ij R_j / (d_j + eps·sgn(d_j))``, ``d_j = Σ_i c_ij``."""
    a, W, R = _vec(a), _mat(W), _vec(R)
    low = _vec(np.broadcast_to(np.asarray(low, np.float64), (len(a),)))
    high = _vec(np.broadcast_to(np.asarray(high, np.float64), (len(a),)))
    M = [abs(r) for r in R] if M is None else _vec(M)
    n, m, eps = len(a), len(R), float(eps)
    R_in, mag_in = [0.0] * n, [0.0] * n
    stab_share = share_mag = 0.0
    for j in range(m):
        c = [a[i] * W[i][j] - low[i] * max(W[i][j], 0.0) - high[i] * min(W[i][j], 0.0)
             for i in range(n)]
        size = [abs(a[i] * W[i][j]) + abs(low[i] * W[i][j]) + abs(high[i] * W[i][j])
                for i in range(n)]
        d = sum(c)
        den = d + eps * sgn(d)
        cond = 1.0 + sum(size) / abs(den)
        q = R[j] / den
        qm = M[j] / abs(den) * cond
        for i in range(n):
            R_in[i] += c[i] * q
            mag_in[i] += size[i] * qm
        stab_share += eps * sgn(d) * q
        share_mag += (eps + sum(size)) * qm + M[j]
    return LayerResult(np.array(R_in), 0.0, stab_share, 0.0, 0,
                       np.array(mag_in), share_mag + sum(mag_in))


def gamma_generalized(a, W, b, R, gamma, eps, absorb_bias=False, M=None):
    """Generalised gamma (DESIGN 3b): the sign of ``z_j = Σ_i a_i w_ij + b_j``
    picks the numerator ``n_ij``; ``R_i = Σ_j n_ij R_j / (D_j + eps·sgn(D_j))``.
    ``z_j == 0``: nothing passes, degenerate when R_j != 0."""
    a, W, b, R = _vec(a), _mat(W), _vec(b), _vec(R)
    M = [abs(r) for r in R] if M is None else _vec(M)
    n, m, g, eps = len(a), len(R), float(gamma), float(eps)
    R_in, mag_in = [0.0] * n, [0.0] * n
    bias_share = stab_share = deg_share = share_mag = 0.0
    n_deg = 0
    pos, neg = (lambda v: max(v, 0.0)), (lambda v: min(v, 0.0))
    for j in range(m):
        z = sum(a[i] * W[i][j] for i in range(n)) + b[j]
        if z == 0.0:
            if R[j] != 0.0:
                n_deg += 1
                deg_share += R[j]
            continue
        nums = []
        for i in range(n):
            w = W[i][j]
            if z > 0:
                nums.append(pos(a[i]) * (w + g * pos(w)) + neg(a[i]) * (w + g * neg(w)))
            else:
                nums.append(pos(a[i]) * (w + g * neg(w)) + neg(a[i]) * (w + g * pos(w)))
        bb = b[j] + g * (pos(b[j]) if z > 0 else neg(b[j]))
        D = sum(nums) + (bb if absorb_bias else 0.0)
        size = sum(abs(v) for v in nums) + abs(bb)
        den = D + eps * sgn(D)
        cond = 1.0 + size / abs(den)
        q = R[j] / den
        qm = M[j] / abs(den) * cond
        for i in range(n):
            R_in[i] += nums[i] * q
            mag_in[i] += abs(nums[i]) * qm
        if absorb_bias:
            bias_share += bb * q
        stab_share += eps * sgn(D) * q
        share_mag += (abs(bb) + eps + size) * qm + M[j]
    return LayerResult(np.array(R_in), bias_share, stab_share, deg_share, n_deg,
                       np.array(mag_in), share_mag + sum(mag_in))


def apply_rule(spec, a, W, b, R, absorb_bias=False, M=None):
    name = spec[0]
    if name == "epsilon":
        return epsilon(a, W, b, R, spec[1], absorb_bias, M)
    if name == "gamma":
        return gamma(a, W, b, R, spec[1], spec[2], absorb_bias, M)
    if name == "alpha-beta":
        return alpha_beta(a, W, b, R, spec[1], absorb_bias, M,
                          eps=spec[2] if len(spec) > 2 else 0.0)
    if name == "z-plus":
        return z_plus(a, W, b, R, absorb_bias, M)
    if name == "w-square":
        return w_square(a, W, b, R, spec[1], absorb_bias, M)
    if name == "flat":
        return flat(a, W, b, R, M)
    if name == "z-box":
        return z_box(a, W, b, R, spec[1], spec[2], spec[3], M)
    if name == "gamma-generalized":
        return gamma_generalized(a, W, b, R, spec[1], spec[2], absorb_bias, M)
    raise ValueError(spec)


# --------------------------------------------------------------------------
# Whole network
# --------------------------------------------------------------------------

def _layer_forward(layer, x, mag):
    """Forward of one layer in float64 loops; returns (out, out magnitude)."""
    from lrpfast import layers as L   # only to tell the layer kinds apart

    if isinstance(layer, L.Dense):
        _, out, g = dense_forward(x, layer.weight, layer.bias, layer.activation)
        return out, g
    if isinstance(layer, L.Activation):
        return np.array([activate(layer.activation, v) for v in x]), mag
    if isinstance(layer, (L.Identity, L.Dropout, L.Flatten)):
        return np.array(x, dtype=np.float64), mag
    if isinstance(layer, L.SoftMax):
        xs = list(x)
        top = max(xs)
        e = [math.exp(v - top) for v in xs]
        tot = math.fsum(e)
        out = np.array([v / tot for v in e])
        # an error δ in the logits moves the outputs by about out * 2δ
        return out, np.abs(out) * (1.0 + 2.0 * float(np.max(mag)))
    if isinstance(layer, L.LayerNorm):
        xs = list(x)
        nn = len(xs)
        mu = math.fsum(xs) / nn
        var = math.fsum((v - mu) ** 2 for v in xs) / nn
        sd = math.sqrt(var + layer.eps)
        w, bb = _vec(layer.weight), _vec(layer.bias)
        out = np.array([(xs[i] - mu) / sd * w[i] + bb[i] for i in range(nn)])
        big = 2.0 * float(np.max(mag)) + max(abs(v - mu) for v in xs)
        return out, np.abs(out) + np.array([abs(w[i]) * big / sd for i in range(nn)])
    if getattr(layer, "lrp", None) == "skip":
        # a rule-less layer defined by a test: its own forward, on one row
        out = np.asarray(layer._forward(np.asarray(x, np.float64)[None]), np.float64)[0]
        return out, np.abs(out) * (1.0 + float(np.max(mag)))
    raise TypeError(f"the loop reference does not know {type(layer).__name__}")


def _kind(layer):
    from lrpfast import layers as L
    if isinstance(layer, L.Dense):
        return "dense"
    if isinstance(layer, (L.Activation, L.Identity, L.Dropout, L.Flatten)):
        return "passthru"
    return "skip"   # SoftMax, LayerNorm: no rule, same shape


@dataclass
class NetResult:
    relevance: np.ndarray       # input_shape, float64
    mag: np.ndarray             # tolerance scale of relevance
    explained_class: int
    logit: float
    logit_mag: float
    output: np.ndarray
    output_mag: np.ndarray
    logits: np.ndarray
    boundaries: list            # one dict per layer, input side first

    @property
    def max_residual(self):
        return max(b["residual"] for b in self.boundaries)


def walk(net, x, rules, forced_class=None, absorb_bias=False, seed=None):
    """Explain one probe ``x`` through ``net`` with the loop rules.

    ``rules``: one spec tuple for every Dense layer or a list of them (one per
    Dense layer, input side first).  The probe is cast to the network's dtype
    first (as lrpfast does) and everything after that runs in float64.
    ``seed`` (n_outputs values) replaces the one-hot logit at the top.  Each
    boundary dict has ``R_in``/``R_out``: the relevance at the layer's input
    and output.
    """
    layers = list(net.layers)
    n_dense = sum(_kind(l) == "dense" for l in layers)
    if isinstance(rules, tuple):
        rules = [rules] * n_dense
    assert len(rules) == n_dense
    x0 = np.asarray(x).astype(net.dtype).astype(np.float64).ravel()

    acts = [x0]
    mags = [np.abs(x0)]
    for layer in layers:
        out, g = _layer_forward(layer, acts[-1], mags[-1])
        acts.append(out)
        mags.append(g)
    output = acts[-1]
    from lrpfast import layers as L
    k_logit = len(layers) - 1 if isinstance(layers[-1], L.SoftMax) else len(layers)
    logits, logit_mags = acts[k_logit], mags[k_logit]
    c = int(np.argmax(output)) if forced_class is None else int(forced_class)
    logit = float(logits[c])

    R = [0.0] * len(output)
    R[c] = logit
    M = [0.0] * len(output)
    M[c] = abs(logit) + float(logit_mags[c])
    R = np.array(R)
    M = np.array(M)
    if seed is not None:
        R = np.asarray(seed, dtype=net.dtype).astype(np.float64).ravel()
        M = np.abs(R)

    names = {spec[0] for spec in rules}
    reason = f"no {next(iter(names))} rule" if len(names) == 1 else None
    bounds = [None] * len(layers)
    dense_k = n_dense
    for k in range(len(layers) - 1, -1, -1):
        layer = layers[k]
        kind = _kind(layer)
        R_out, M_out = R, M
        info = dict(index=k, name=layer.name, bias_share=0.0, stabilizer_share=0.0,
                    degenerate_share=0.0, degenerate=0, share_mag=0.0,
                    R_out=R_out, d=None, eps=None)
        if kind == "dense":
            dense_k -= 1
            spec = rules[dense_k]
            res = apply_rule(spec, acts[k], layer.weight, layer.bias, R_out,
                             absorb_bias, M_out)
            R, M = res.R_in, res.mag_in
            info.update(rule=spec[0], reason=None, bias_share=res.bias_share,
                        stabilizer_share=res.stabilizer_share,
                        degenerate_share=res.degenerate_share,
                        degenerate=res.degenerate, share_mag=res.share_mag, d=res.d,
                        eps=spec[-1] if spec[0] in ("epsilon", "gamma") else None)
        elif kind == "passthru":
            info.update(rule="passthru", reason=None)
        else:
            info.update(rule="SKIPPED", reason=reason)
        info["R_in"] = np.array(R)
        info["sum_in"] = math.fsum(R)
        info["sum_out"] = math.fsum(R_out)
        info["residual"] = abs(info["sum_in"] - info["sum_out"])
        info["sum_in_mag"] = float(np.sum(np.abs(R)) + np.sum(M))
        info["sum_out_mag"] = float(np.sum(np.abs(R_out)) + np.sum(M_out))
        bounds[k] = info
    return NetResult(R.reshape(net.input_shape), M.reshape(net.input_shape), c, logit,
                     abs(logit) + float(logit_mags[c]), output, mags[-1], logits,
                     bounds)
