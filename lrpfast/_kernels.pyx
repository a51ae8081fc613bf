# cython: language_level=3
"""Typed kernels of lrpfast: dense forward pass and LRP redistributions.

Math (DESIGN §3), for a dense layer with input ``a`` (n), weights ``W``
(n x m, row-major, ``W[i, j]`` from input i to output j), bias ``b`` (m) and
upper relevance ``R`` (m):

* epsilon / gamma: ``w' = w + gamma*max(w, 0)`` (gamma = 0: epsilon),
  ``s'_j = sum_i a_i w'_ij``, ``d_j = s'_j`` or ``s'_j + b'_j`` (absorb_bias),
  ``q_j = R_j / (d_j + eps*sgn(d_j))``, ``R_i = a_i sum_j w'_ij q_j``.
* alpha-beta: ``c_ij = a_i w_ij``, ``P_j = sum_i max(c_ij, 0)`` (+ max(b_j, 0)),
  ``N_j = sum_i min(c_ij, 0)`` (+ min(b_j, 0)),
  ``R_i = sum_j R_j (alpha max(c_ij,0)/P_j - beta min(c_ij,0)/N_j)``; a zero
  denominator gives a zero term and, when ``R_j != 0``, a degenerate neuron.
  An optional stabiliser eps is added to P and N with their signs.  z-plus is
  alpha = 1, beta = 0.
* generalised gamma: ``z_j = s_j + b_j`` picks ``n_ij = c_ij + gamma*max(c_ij, 0)``
  (z_j > 0) or ``c_ij + gamma*min(c_ij, 0)`` (z_j < 0), ``D_j = sum_i n_ij``
  (+ b_j + gamma*b+-_j), ``R_i = sum_j n_ij R_j / (D_j + eps*sgn(D_j))``.
* w-square: ``R_i = sum_j W_ij^2 R_j / (d_j + eps)``, ``d_j = sum_i W_ij^2`` (+ b_j^2).
* flat: ``R_i = sum_j R_j / n``.
* z-box: ``c_ij = a_i W_ij - l_i W+_ij - h_i W-_ij``, the epsilon rule on c.

Every kernel is a plain loop over ``a_i * w_ij`` that never builds an n x m
array; helpers are ``noexcept nogil`` and nothing raises inside them.  Inputs
are validated in Python before they get here.

The "shares" of a boundary are ``[bias, stabiliser, degenerate, n_degenerate]``:
the relevance absorbed by the bias, by the stabiliser, and lost at degenerate
neurons.  They add up to ``sum(R_out) - sum(R_in)``.
"""

cimport cython
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport copysign, copysignf, exp, fabs, fabsf, isfinite, sqrt, tanh
from libc.stdlib cimport free, malloc

# Activation codes (layers.ACT_CODES).
cdef enum:
    ACT_LINEAR = 0
    ACT_RELU = 1
    ACT_TANH = 2
    ACT_SIGMOID = 3

# Forward-pass side products a rule needs (see _dense_forward).
cdef enum:
    PREP_NONE = 0    # epsilon: s = a @ W is all it needs
    PREP_GAMMA = 1   # gamma: s1 = a @ W'
    PREP_P = 3       # alpha-beta, z-plus, generalised gamma: s1 = P (N = s - P)

# Rule codes (rules.CODE_*).
cdef enum:
    RULE_NONE = -1
    RULE_EPSILON = 0        # epsilon, gamma: p1 = eps, p2 = gamma
    RULE_ALPHA_BETA = 1     # alpha-beta, z-plus: p1 = alpha, p2 = beta, p3 = eps
    RULE_GAMMA_GEN = 2      # generalised gamma: p1 = eps, p2 = gamma
    RULE_WSQUARE = 3        # p1 = eps; aux1 = sum_i W_ij^2 (+ b_j^2 with absorb)
    RULE_FLAT = 4
    RULE_ZBOX = 5           # p1 = eps; aux1 = l @ W+ + h @ W-, aux2 = l, aux3 = h

# Layer operations of a Plan.
cdef enum:
    OP_ALIAS = 0      # Identity, Dropout (inference), Flatten: output is the input
    OP_DENSE = 1
    OP_ACT = 2
    OP_SOFTMAX = 3
    OP_LAYERNORM = 4
    OP_AFFINE = 5     # y = x * scale + shift, element-wise (W = scale, b = shift)

# CPU check for the dispatch in _dispatch.py; compiled here, in the baseline
# module, so that it runs on any x86-64 before an AVX2 module is imported.
cdef extern from *:
    """
    static int lrpfast_cpu_avx2_fma(void) {
    #if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    #else
        return 0;
    #endif
    }
    """
    int lrpfast_cpu_avx2_fma() nogil


def cpu_has_avx2_fma():
    """True when this CPU runs AVX2 and FMA instructions."""
    return bool(lrpfast_cpu_avx2_fma())


# Columns of the per-boundary statistics (explain.SUM_IN, ...).
cdef enum:
    ST_SUM_IN = 0
    ST_SUM_OUT = 1
    ST_SHARES = 2     # bias, stabiliser, degenerate share, n degenerate
    N_STATS = 6

OP_CODES = {"alias": OP_ALIAS, "dense": OP_DENSE, "act": OP_ACT,
            "softmax": OP_SOFTMAX, "layernorm": OP_LAYERNORM, "affine": OP_AFFINE}


# --------------------------------------------------------------------------
# Building blocks (shared by the single-probe walk and the batch kernels)
# --------------------------------------------------------------------------

cdef inline floating _pos(floating x) noexcept nogil:
    """max(x, 0) as (x + |x|) / 2: exact, and branch-free so loops vectorise
    (a ternary inside an unrolled reduction is left as a jump by gcc)."""
    if floating is float:
        return <float>0.5 * (x + fabsf(x))
    else:
        return 0.5 * (x + fabs(x))


cdef inline floating _sgn_eps(floating e, floating d) noexcept nogil:
    """e * sgn(d) with sgn(0) = +1, as a sign copy rather than a comparison.

    d + 0 turns a -0.0 into +0.0 (round to nearest) and changes nothing else;
    an ordered comparison (d < 0) would block vectorisation: gcc keeps it as
    a branch because it may trap on NaN.
    """
    if floating is float:
        return copysignf(e, d + <float>0.0)
    else:
        return copysign(e, d + 0.0)


cdef inline floating _activate(floating z, int code) noexcept nogil:
    if code == ACT_RELU:
        return z if z > 0 else 0
    elif code == ACT_TANH:
        return <floating>tanh(z)
    elif code == ACT_SIGMOID:
        # 0.5 * (1 + tanh(z / 2)): the logistic function without overflow
        return <floating>(0.5 * (1.0 + tanh(0.5 * z)))
    return z


cdef void _dense_forward(const floating* a, const floating* W, const floating* b,
                         Py_ssize_t n, Py_ssize_t m, Py_ssize_t ld, int act, int prep,
                         double gam, floating* s, floating* out,
                         floating* s1) noexcept nogil:
    """s = a @ W, out = act(s + b), plus what the rule needs, in one pass over W.

    W is n x m with rows ``ld`` apart (ld = m, or more for a block of columns).
    PREP_GAMMA: s1 = a @ W' with W' = W + gam*max(W, 0).
    PREP_P:     s1 = sum_i max(a_i W_ij, 0) (P); N = s - P (_n_from_s_p).
    Rows with a_i == 0 (common after a ReLU) contribute nothing and are
    skipped; the others are taken four at a time, so
    each s_j is loaded and stored once per four rows (the loop is bound by
    those stores).
    """
    cdef Py_ssize_t i, j, t, nz = 0
    cdef floating g = <floating>gam
    cdef floating a0, a1, a2, a3, w0, w1, w2, w3, c0, c1, c2, c3
    cdef const floating* r0
    cdef const floating* r1
    cdef const floating* r2
    cdef const floating* r3
    cdef Py_ssize_t* rows = <Py_ssize_t*>malloc(n * sizeof(Py_ssize_t))
    for j in range(m):
        s[j] = 0
    if prep != PREP_NONE:
        for j in range(m):
            s1[j] = 0
    if rows != NULL:
        for i in range(n):
            if a[i] != 0:
                rows[nz] = i
                nz += 1
        # alpha-beta sums s and P only (N = s - P): a third sum per weight
        # measured 2x slower four rows at a time (too few registers)
        for t in range(0, nz - nz % 4, 4):
            a0 = a[rows[t]]
            a1 = a[rows[t + 1]]
            a2 = a[rows[t + 2]]
            a3 = a[rows[t + 3]]
            r0 = W + rows[t] * ld
            r1 = W + rows[t + 1] * ld
            r2 = W + rows[t + 2] * ld
            r3 = W + rows[t + 3] * ld
            if prep == PREP_NONE:
                for j in range(m):                      # s += a[rows] @ W[rows, :]
                    s[j] += (a0 * r0[j] + a1 * r1[j]) + (a2 * r2[j] + a3 * r3[j])
            elif prep == PREP_GAMMA:
                for j in range(m):
                    w0 = r0[j]
                    w1 = r1[j]
                    w2 = r2[j]
                    w3 = r3[j]
                    s[j] += (a0 * w0 + a1 * w1) + (a2 * w2 + a3 * w3)
                    s1[j] += ((a0 * (w0 + g * _pos(w0)) + a1 * (w1 + g * _pos(w1)))
                              + (a2 * (w2 + g * _pos(w2)) + a3 * (w3 + g * _pos(w3))))
            else:       # PREP_P: the same association for s and P, so a column
                for j in range(m):      # with no negative c_ij has s - P == 0 exactly
                    c0 = a0 * r0[j]
                    c1 = a1 * r1[j]
                    c2 = a2 * r2[j]
                    c3 = a3 * r3[j]
                    s[j] += (c0 + c1) + (c2 + c3)
                    s1[j] += (_pos(c0) + _pos(c1)) + (_pos(c2) + _pos(c3))
        t = nz - nz % 4
    else:              # no memory for the row list: every row, one at a time
        t = 0
    for t in range(t, nz if rows != NULL else n):
        i = rows[t] if rows != NULL else t
        a0 = a[i]
        if a0 == 0:
            continue
        r0 = W + i * ld
        if prep == PREP_NONE:
            for j in range(m):
                s[j] += a0 * r0[j]                      # s += a_i * W[i, :]
        elif prep == PREP_GAMMA:
            for j in range(m):
                w0 = r0[j]
                s[j] += a0 * w0
                s1[j] += a0 * (w0 + g * _pos(w0))       # s1 += a_i * W'[i, :]
        else:
            for j in range(m):
                c0 = a0 * r0[j]
                s[j] += c0
                s1[j] += _pos(c0)                       # P += max(c, 0)
    free(rows)
    for j in range(m):
        out[j] = _activate(s[j] + b[j], act)


cdef void _n_from_s_p(const floating* a, const floating* W, Py_ssize_t n,
                      Py_ssize_t m, Py_ssize_t ld, const floating* s, const floating* P,
                      floating* N) noexcept nogil:
    """N_j = s_j - P_j (sum_i min(a_i W_ij, 0)), recomputed where it cancels.

    ``s`` and ``P`` were summed in the same association (PREP_P), so a column
    with no negative c_ij gives exactly 0.  Where |N_j| < P_j / 16 the
    subtraction may have lost digits: that column is summed again, one row at
    a time, as the batch path does (``_batch.py``).
    """
    cdef Py_ssize_t i, j
    cdef floating acc, c, sixteen = 16
    for j in range(m):
        N[j] = s[j] - P[j]
    for j in range(m):
        if sixteen * (-N[j]) < P[j]:
            acc = 0
            for i in range(n):
                if a[i] != 0:
                    c = a[i] * W[i * ld + j]
                    acc += c - _pos(c)                  # N += min(c, 0)
            N[j] = acc


# The backward sums below reduce along a row of W.  Without -ffast-math a C
# compiler may not reorder a float sum, so a plain ``acc += ...`` loop runs one
# element at a time.  Eight independent partial sums in a small array (summed
# at the end) are plain element-wise work that gcc vectorises as it is.
cdef inline floating _row_dot(const floating* w, const floating* q, Py_ssize_t m,
                              floating gam) noexcept nogil:
    """sum_j w'_j q_j with w' = w + gam*max(w, 0)   (W'[i, :] @ q)."""
    cdef floating acc[8]
    cdef floating x, t
    cdef Py_ssize_t j, k, m8 = m - m % 8
    for k in range(8):
        acc[k] = 0
    if gam == 0:
        for j in range(0, m8, 8):
            for k in range(8):
                acc[k] += w[j + k] * q[j + k]
        for j in range(m8, m):
            acc[0] += w[j] * q[j]
    else:
        for j in range(0, m8, 8):
            for k in range(8):
                x = w[j + k]
                acc[k] += (x + gam * _pos(x)) * q[j + k]
        for j in range(m8, m):
            x = w[j]
            acc[0] += (x + gam * _pos(x)) * q[j]
    t = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
    return t


cdef inline double _sum(const floating* x, Py_ssize_t n) noexcept nogil:
    """sum_i x_i in float64, eight lanes (x.sum(dtype=float64), other order)."""
    cdef double acc[8]
    cdef Py_ssize_t i, k, n8 = n - n % 8
    for k in range(8):
        acc[k] = 0.0
    for i in range(0, n8, 8):
        for k in range(8):
            acc[k] += x[i + k]
    for i in range(n8, n):
        acc[0] += x[i]
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))


cdef inline floating _row_split_dot(const floating* w, const floating* up,
                                    const floating* dn, Py_ssize_t m) noexcept nogil:
    """sum_j (max(w_j, 0) up_j + min(w_j, 0) dn_j)."""
    cdef floating acc[8]
    cdef floating x, xp, t
    cdef Py_ssize_t j, k, m8 = m - m % 8
    for k in range(8):
        acc[k] = 0
    for j in range(0, m8, 8):
        for k in range(8):
            x = w[j + k]
            xp = _pos(x)
            acc[k] += xp * up[j + k] + (x - xp) * dn[j + k]
    for j in range(m8, m):
        x = w[j]
        xp = _pos(x)
        acc[0] += xp * up[j] + (x - xp) * dn[j]
    t = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
    return t


cdef void _eps_q_row(const floating* s, const floating* b, Py_ssize_t m, double eps,
                     double gam, bint absorb, const floating* R, floating* q,
                     floating* st, double* shares) noexcept nogil:
    """q_j = R_j / (d_j + st_j), st_j = eps*sgn(d_j), d_j = s_j (+ b'_j); add the shares.

    The first loop has no branch and no reduction, so it vectorises
    (``absorb`` is a 0/1 factor: d + 0*b' is d exactly); the shares are two
    lane dots: bias sum_j b'_j q_j and stabiliser sum_j st_j q_j.
    ``st`` is scratch of length m.
    """
    cdef Py_ssize_t j
    cdef floating e = <floating>eps, g = <floating>gam
    cdef floating fa = 1 if absorb else 0
    cdef floating d, t
    for j in range(m):
        d = s[j] + fa * (b[j] + g * _pos(b[j]))      # b' = b + gamma*max(b, 0)
        t = _sgn_eps(e, d)                             # eps*sgn(d), sgn(0) = +1
        q[j] = R[j] / (d + t)
        st[j] = t
    if absorb:
        shares[0] += _row_dot(b, q, m, g)              # b' @ q
    shares[1] += _row_dot(st, q, m, 0)                 # st @ q


cdef void _ab_q_row(const floating* P, const floating* N, const floating* b,
                    Py_ssize_t m, double alpha, double beta, double eps, bint absorb,
                    const floating* R, floating* qp, floating* qn,
                    double* shares) noexcept nogil:
    """qp_j = alpha R_j / P_j and qn_j = -beta R_j / N_j (0 where the denominator is 0).

    P and N get max(b, 0) and min(b, 0) with ``absorb``.  qn is stored
    negated, so the backward sum is sum_j w_ij * (qp_j or qn_j).  A neuron
    with R_j != 0 and P_j == 0 (or N_j == 0 while beta != 0) is degenerate:
    only R_j (alpha [P_j != 0] - beta [N_j != 0]) reaches the inputs, and
    the rest is its lost share.  The first loop is branch-free (comparisons
    are 0/1 factors) so it vectorises; degenerate neurons are rare, so their
    loop branches predictably.
    """
    cdef Py_ssize_t j, k, m8 = m - m % 8
    cdef floating a = <floating>alpha, bt = <floating>beta, e = <floating>eps
    cdef floating fa = 1 if absorb else 0
    cdef floating one = 1, zero = 0          # typed: a bare 1.0 would be a double
    cdef floating p, nn, bp, okp, okn
    cdef floating zeros[8]
    cdef double rj, deg_sh = 0.0, n_deg = 0.0, st = 0.0
    # eps*sgn(.) is a signed zero when eps == 0, so p + it is p exactly
    for j in range(m):
        bp = fa * _pos(b[j])
        p = P[j] + bp
        nn = N[j] + (fa * b[j] - bp)
        okp = (p != zero)
        okn = (nn != zero)
        qp[j] = okp * (a * R[j] / ((p + _sgn_eps(e, p)) + (one - okp)))      # 0 where P_j == 0
        qn[j] = -(okn * (bt * R[j] / ((nn + _sgn_eps(e, nn)) + (one - okn))))  # 0 where N_j == 0
    if eps != 0:
        # stabiliser share: sum_j eps*sgn(P_j) qp_j + eps*sgn(N_j) qn_j
        for j in range(m):
            bp = fa * _pos(b[j])
            st += _sgn_eps(e, P[j] + bp) * qp[j] + _sgn_eps(e, N[j] + (fa * b[j] - bp)) * qn[j]
        shares[1] += st
    if absorb:
        # sum_j max(b_j, 0) qp_j + min(b_j, 0) qn_j  (qn negated: -beta R/N b-)
        shares[0] += _row_split_dot(b, qp, qn, m)
    # Degenerate neurons need a zero denominator: count those first (lanes,
    # so it vectorises) and walk the row only where there is one.
    for k in range(8):
        zeros[k] = 0
    for j in range(0, m8, 8):
        for k in range(8):
            bp = fa * _pos(b[j + k])
            zeros[k] += (P[j + k] + bp == zero) + (N[j + k] + (fa * b[j + k] - bp) == zero)
    for j in range(m8, m):
        bp = fa * _pos(b[j])
        zeros[0] += (P[j] + bp == zero) + (N[j] + (fa * b[j] - bp) == zero)
    if ((zeros[0] + zeros[1]) + (zeros[2] + zeros[3])) + \
            ((zeros[4] + zeros[5]) + (zeros[6] + zeros[7])) == 0:
        return
    for j in range(m):
        rj = R[j]
        if rj == 0:
            continue
        p = P[j] + fa * _pos(b[j])
        nn = N[j] + fa * (b[j] - _pos(b[j]))
        if p == 0 or (nn == 0 and beta != 0):
            n_deg += 1
            deg_sh += rj * (1.0 - (alpha if p != 0 else 0.0) + (beta if nn != 0 else 0.0))
    shares[2] += deg_sh
    shares[3] += n_deg


cdef void _gg_q_row(const floating* s, const floating* P, const floating* N,
                    const floating* b, Py_ssize_t m, double gam, double eps, bint absorb,
                    const floating* R, floating* qp, floating* qn,
                    double* shares) noexcept nogil:
    """Generalised gamma: q_j = R_j / (D_j + eps*sgn(D_j)); qp = q (1 + gamma [z_j > 0]),
    qn = q (1 + gamma [z_j < 0]) multiply max(c, 0) and min(c, 0).

    z_j = s_j + b_j (with the bias in both modes) picks the case; z_j == 0
    passes nothing (a degenerate neuron when R_j != 0).
    """
    cdef Py_ssize_t j
    cdef floating g = <floating>gam, e = <floating>eps
    cdef floating z, bj, bb, d, t, q, fp, fn
    cdef double bias_sh = 0.0, st_sh = 0.0, deg_sh = 0.0, n_deg = 0.0
    for j in range(m):
        bj = b[j]
        z = s[j] + bj
        fp = 1 if z > 0 else 0
        fn = 1 if z < 0 else 0
        bb = fp * (bj + g * _pos(bj)) + fn * (bj + g * (bj - _pos(bj)))   # b + gamma b+-
        d = s[j] + g * (fp * P[j] + fn * N[j])
        if absorb:
            d = d + bb
        t = _sgn_eps(e, d)
        if fp + fn == 0:
            q = 0
            if R[j] != 0:
                n_deg += 1
                deg_sh += R[j]
        else:
            q = R[j] / (d + t)
        qp[j] = q * (1 + g * fp)
        qn[j] = q * (1 + g * fn)
        if absorb:
            bias_sh += bb * q
        st_sh += t * q
    shares[0] += bias_sh
    shares[1] += st_sh
    shares[2] += deg_sh
    shares[3] += n_deg


cdef void _wsq_q_row(const floating* d, const floating* b, Py_ssize_t m, double eps,
                     bint absorb, const floating* R, floating* q,
                     double* shares) noexcept nogil:
    """w-square: q_j = R_j / (d_j + eps) (d_j = sum_i W_ij^2, + b_j^2 with absorb)."""
    cdef Py_ssize_t j
    cdef floating e = <floating>eps
    cdef double bias_sh = 0.0, st_sh = 0.0
    for j in range(m):
        q[j] = R[j] / (d[j] + e)
        st_sh += q[j]
        if absorb:
            bias_sh += b[j] * b[j] * q[j]
    shares[0] += bias_sh
    shares[1] += eps * st_sh


cdef inline floating _row_dot_sq(const floating* w, const floating* q,
                                 Py_ssize_t m) noexcept nogil:
    """sum_j w_j^2 q_j   ((W^2)[i, :] @ q)."""
    cdef floating acc[8]
    cdef floating x
    cdef Py_ssize_t j, k, m8 = m - m % 8
    for k in range(8):
        acc[k] = 0
    for j in range(0, m8, 8):
        for k in range(8):
            x = w[j + k]
            acc[k] += x * x * q[j + k]
    for j in range(m8, m):
        x = w[j]
        acc[0] += x * x * q[j]
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))


cdef inline void _row_pos_neg(const floating* w, const floating* q, Py_ssize_t m,
                              floating* up, floating* dn) noexcept nogil:
    """up = sum_j max(w_j, 0) q_j, dn = sum_j min(w_j, 0) q_j."""
    cdef floating accp[8]
    cdef floating accn[8]
    cdef floating x, xp
    cdef Py_ssize_t j, k, m8 = m - m % 8
    for k in range(8):
        accp[k] = 0
        accn[k] = 0
    for j in range(0, m8, 8):
        for k in range(8):
            x = w[j + k]
            xp = _pos(x)
            accp[k] += xp * q[j + k]
            accn[k] += (x - xp) * q[j + k]
    for j in range(m8, m):
        x = w[j]
        xp = _pos(x)
        accp[0] += xp * q[j]
        accn[0] += (x - xp) * q[j]
    up[0] = ((accp[0] + accp[1]) + (accp[2] + accp[3])) + \
        ((accp[4] + accp[5]) + (accp[6] + accp[7]))
    dn[0] = ((accn[0] + accn[1]) + (accn[2] + accn[3])) + \
        ((accn[4] + accn[5]) + (accn[6] + accn[7]))


cdef void _wsq_backward(const floating* W, Py_ssize_t n, Py_ssize_t m,
                        const floating* q, floating* Rin) noexcept nogil:
    """R_in_i = sum_j W_ij^2 q_j   (R_in = q @ (W^2).T)."""
    cdef Py_ssize_t i
    for i in range(n):
        Rin[i] = _row_dot_sq(W + i * m, q, m)


cdef void _zbox_backward(const floating* a, const floating* lo, const floating* hi,
                         const floating* W, Py_ssize_t n, Py_ssize_t m,
                         const floating* q, floating* Rin) noexcept nogil:
    """R_in_i = (a_i - l_i) sum_j W+_ij q_j + (a_i - h_i) sum_j W-_ij q_j."""
    cdef Py_ssize_t i
    cdef floating up, dn
    for i in range(n):
        _row_pos_neg(W + i * m, q, m, &up, &dn)
        Rin[i] = (a[i] - lo[i]) * up + (a[i] - hi[i]) * dn


cdef void _flat_backward(const floating* R, Py_ssize_t n, Py_ssize_t m,
                         floating* Rin) noexcept nogil:
    """R_in_i = sum_j R_j / n."""
    cdef Py_ssize_t i
    cdef floating v = <floating>(_sum(R, m) / n)
    for i in range(n):
        Rin[i] = v


cdef void _eps_backward(const floating* a, const floating* W, Py_ssize_t n,
                        Py_ssize_t m, double gam, const floating* q,
                        floating* Rin) noexcept nogil:
    """R_in_i = a_i * sum_j W'_ij q_j   (R_in = a * (q @ W'.T))."""
    cdef Py_ssize_t i
    cdef floating ai
    for i in range(n):
        ai = a[i]
        Rin[i] = 0 if ai == 0 else ai * _row_dot(W + i * m, q, m, <floating>gam)


cdef void _ab_backward(const floating* a, const floating* W, Py_ssize_t n,
                       Py_ssize_t m, const floating* qp, const floating* qn,
                       floating* Rin) noexcept nogil:
    """R_in_i = sum_j c_ij * (qp_j if c_ij > 0 else qn_j), c_ij = a_i W_ij.

    The sign of c_ij is the sign of W_ij for a_i > 0 and the opposite for a_i < 0.
    """
    cdef Py_ssize_t i
    cdef floating ai
    for i in range(n):
        ai = a[i]
        if ai == 0:
            Rin[i] = 0
        elif ai > 0:
            Rin[i] = ai * _row_split_dot(W + i * m, qp, qn, m)
        else:
            Rin[i] = ai * _row_split_dot(W + i * m, qn, qp, m)


# Layers with fewer weights than this run on one thread.  Measured on the
# 2-core machine of the README: a 1024 x 1024 layer (0.4 ms a probe) is no
# faster on two threads, a 4096 x 4096 one (memory-bound, 8.5 ms) is 1.5x.
cdef Py_ssize_t PAR_MIN_WEIGHTS = 1 << 22


cdef void _dense_forward_par(const floating* a, const floating* W, const floating* b,
                             Py_ssize_t n, Py_ssize_t m, int act, int prep, double gam,
                             floating* s, floating* out, floating* s1,
                             int nt) noexcept nogil:
    """_dense_forward with the columns split between ``nt`` threads (same sums)."""
    cdef Py_ssize_t t, j0, j1, blk
    if nt <= 1 or n * m < PAR_MIN_WEIGHTS or m < 32 * nt:
        _dense_forward(a, W, b, n, m, m, act, prep, gam, s, out, s1)
        return
    blk = ((m + nt - 1) // nt + 15) // 16 * 16      # whole 64-byte lines per thread
    for t in prange(nt, num_threads=nt, schedule="static"):
        j0 = t * blk
        j1 = min(m, j0 + blk)
        if j0 < j1:
            _dense_forward(a, W + j0, b + j0, n, j1 - j0, m, act, prep, gam, s + j0,
                           out + j0, s1 + j0)


cdef void _backward_par(int code, const floating* a, const floating* W, Py_ssize_t n,
                        Py_ssize_t m, double gam, const floating* q1,
                        const floating* q2, const floating* lo, const floating* hi,
                        floating* Rin, int nt) noexcept nogil:
    """The backward sum of rule ``code`` with the rows split between ``nt`` threads.

    RULE_EPSILON: _eps_backward(q1); RULE_ALPHA_BETA (and RULE_GAMMA_GEN):
    _ab_backward(q1, q2); RULE_WSQUARE: _wsq_backward(q1); RULE_ZBOX:
    _zbox_backward(lo, hi, q1).
    """
    cdef Py_ssize_t t, i0, i1, blk
    if nt <= 1 or n * m < PAR_MIN_WEIGHTS or n < 8 * nt:
        nt = 1
    blk = (n + nt - 1) // nt
    for t in prange(nt, num_threads=nt, schedule="static"):
        i0 = t * blk
        i1 = min(n, i0 + blk)
        if i0 < i1:
            if code == RULE_ALPHA_BETA or code == RULE_GAMMA_GEN:
                _ab_backward(a + i0, W + i0 * m, i1 - i0, m, q1, q2, Rin + i0)
            elif code == RULE_WSQUARE:
                _wsq_backward(W + i0 * m, i1 - i0, m, q1, Rin + i0)
            elif code == RULE_ZBOX:
                _zbox_backward(a + i0, lo + i0, hi + i0, W + i0 * m, i1 - i0, m, q1,
                               Rin + i0)
            else:
                _eps_backward(a + i0, W + i0 * m, i1 - i0, m, gam, q1, Rin + i0)


# --------------------------------------------------------------------------
# Single-layer entry points (one probe; used by tests and as building blocks)
# --------------------------------------------------------------------------

def dense_forward(const floating[::1] a, const floating[:, ::1] W,
                  const floating[::1] b, int act, floating[::1] z, floating[::1] out):
    """z = a @ W + b and out = act(z) for one probe (act: layers.ACT_CODES)."""
    cdef Py_ssize_t n = W.shape[0], m = W.shape[1], j
    with nogil:
        _dense_forward(&a[0], &W[0, 0], &b[0], n, m, m, act, PREP_NONE, 0.0,
                       &z[0], &out[0], <floating*>NULL)
        for j in range(m):
            z[j] = z[j] + b[j]


def dense_backward(const floating[::1] a, const floating[:, ::1] W,
                   const floating[::1] b, const floating[::1] z,
                   const floating[::1] R, int code, double p1, double p2,
                   bint absorb, floating[::1] R_in, double p3=0.0, aux1=None, aux2=None,
                   aux3=None):
    """One dense boundary for one probe; returns the shares tuple.

    ``code``, ``p1``, ``p2``, ``p3``: ``rules.Rule.kernel_args()`` (epsilon/gamma:
    eps, gamma; alpha-beta: alpha, beta, eps; generalised gamma: eps, gamma;
    w-square, z-box: eps).  ``aux1..3``: ``Rule.plan_aux()`` (w-square: the
    denominators; z-box: the offsets, low and high).  ``z`` is the
    pre-activation ``a @ W + b``; the bias-free sums the rules need are
    recomputed from ``a`` and ``W``.
    """
    cdef Py_ssize_t n = W.shape[0], m = W.shape[1], j
    cdef double shares[4]
    cdef int t
    cdef const floating[::1] x1
    cdef const floating[::1] x2
    cdef const floating[::1] x3
    cdef const floating* px1 = NULL
    cdef const floating* px2 = NULL
    cdef const floating* px3 = NULL
    if aux1 is not None:
        x1 = aux1
        px1 = &x1[0]
    if aux2 is not None:
        x2 = aux2
        x3 = aux3
        px2 = &x2[0]
        px3 = &x3[0]
    for t in range(4):
        shares[t] = 0.0
    cdef floating* buf = <floating*>malloc(5 * m * sizeof(floating))
    if buf == NULL:
        raise MemoryError()
    cdef floating* s = buf
    cdef floating* s1 = buf + m
    cdef floating* s2 = buf + 2 * m
    cdef floating* q1 = buf + 3 * m
    cdef floating* q2 = buf + 4 * m
    try:
        with nogil:
            if code == RULE_ALPHA_BETA or code == RULE_GAMMA_GEN:
                # as in explain_single (Plan): PREP_P, N = s - P where needed
                _dense_forward(&a[0], &W[0, 0], &b[0], n, m, m, ACT_LINEAR, PREP_P,
                               0.0, s, q1, s1)
                if code == RULE_ALPHA_BETA:
                    if p2 != 0:
                        _n_from_s_p(&a[0], &W[0, 0], n, m, m, s, s1, s2)
                    _ab_q_row(s1, s2 if p2 != 0 else s1, &b[0], m, p1, p2, p3, absorb,
                              &R[0], q1, q2, shares)
                else:
                    for j in range(m):
                        s2[j] = s[j] - s1[j]                # N = s - P
                    _gg_q_row(s, s1, s2, &b[0], m, p2, p1, absorb, &R[0], q1, q2, shares)
                _ab_backward(&a[0], &W[0, 0], n, m, q1, q2, &R_in[0])
            elif code == RULE_WSQUARE:
                _wsq_q_row(px1, &b[0], m, p1, absorb, &R[0], q1, shares)
                _wsq_backward(&W[0, 0], n, m, q1, &R_in[0])
            elif code == RULE_FLAT:
                _flat_backward(&R[0], n, m, &R_in[0])
            elif code == RULE_ZBOX:
                _dense_forward(&a[0], &W[0, 0], &b[0], n, m, m, ACT_LINEAR, PREP_NONE,
                               0.0, s, q1, s1)
                for j in range(m):
                    s[j] = s[j] - px1[j]                # d = s - l @ W+ - h @ W-
                _eps_q_row(s, &b[0], m, p1, 0.0, False, &R[0], q1, q2, shares)
                _zbox_backward(&a[0], px2, px3, &W[0, 0], n, m, q1, &R_in[0])
            else:
                _dense_forward(&a[0], &W[0, 0], &b[0], n, m, m, ACT_LINEAR,
                               PREP_GAMMA if p2 != 0 else PREP_NONE, p2, s, q1, s1)
                _eps_q_row(s1 if p2 != 0 else s, &b[0], m, p1, p2, absorb, &R[0],
                           q1, q2, shares)
                _eps_backward(&a[0], &W[0, 0], n, m, p2, q1, &R_in[0])
    finally:
        free(buf)
    return shares[0], shares[1], shares[2], shares[3]


# --------------------------------------------------------------------------
# Batch element-wise kernels (the matrix products are BLAS calls in Python)
# --------------------------------------------------------------------------

def epsilon_q(const floating[:, ::1] S, const floating[::1] b,
              const floating[:, ::1] R, double eps, double gam, bint absorb,
              floating[:, ::1] Q, floating[:, ::1] scratch, double[:, ::1] shares,
              int n_threads=1):
    """Q = R / (D + eps*sgn(D)), D = S (+ b'), row by row; shares[:, 0:2] += .

    ``scratch`` has the shape of Q (it receives eps*sgn(D)).
    """
    cdef Py_ssize_t r, B = S.shape[0], m = S.shape[1]
    for r in prange(B, nogil=True, schedule="static", num_threads=n_threads):
        _eps_q_row(&S[r, 0], &b[0], m, eps, gam, absorb, &R[r, 0], &Q[r, 0],
                   &scratch[r, 0], &shares[r, 0])


def alpha_beta_q(const floating[:, ::1] P, const floating[:, ::1] N,
                 const floating[::1] b, const floating[:, ::1] R, double alpha,
                 double beta, bint absorb, floating[:, ::1] QP, floating[:, ::1] QN,
                 double[:, ::1] shares, int n_threads=1, double eps=0.0):
    """QP = alpha R / (P + eps), QN = -beta R / (N - eps) (0 on zero P, N), row by row."""
    cdef Py_ssize_t r, B = P.shape[0], m = P.shape[1]
    for r in prange(B, nogil=True, schedule="static", num_threads=n_threads):
        _ab_q_row(&P[r, 0], &N[r, 0], &b[0], m, alpha, beta, eps, absorb, &R[r, 0],
                  &QP[r, 0], &QN[r, 0], &shares[r, 0])


def gamma_gen_q(const floating[:, ::1] S, const floating[:, ::1] P,
                const floating[:, ::1] N, const floating[::1] b,
                const floating[:, ::1] R, double gam, double eps, bint absorb,
                floating[:, ::1] QP, floating[:, ::1] QN, double[:, ::1] shares):
    """Generalised gamma, row by row: QP, QN multiply max(c, 0), min(c, 0) (_gg_q_row)."""
    cdef Py_ssize_t r, B = P.shape[0], m = P.shape[1]
    with nogil:
        for r in range(B):
            _gg_q_row(&S[r, 0], &P[r, 0], &N[r, 0], &b[0], m, gam, eps, absorb,
                      &R[r, 0], &QP[r, 0], &QN[r, 0], &shares[r, 0])


def row_sums(const floating[:, ::1] X, double[:] out):
    """out = X.sum(axis=1, dtype=float64)."""
    cdef Py_ssize_t r, B = X.shape[0], n = X.shape[1]
    with nogil:
        for r in range(B):
            out[r] = _sum(&X[r, 0], n)


def mul_row_sums(floating[:, ::1] X, const floating[:, ::1] A, double[:] out):
    """X *= A, then out = X.sum(axis=1, dtype=float64), in one pass."""
    cdef Py_ssize_t r, i, B = X.shape[0], n = X.shape[1]
    with nogil:
        for r in range(B):
            for i in range(n):
                X[r, i] = X[r, i] * A[r, i]
            out[r] = _sum(&X[r, 0], n)


# --------------------------------------------------------------------------
# The whole network for one probe, in one call
# --------------------------------------------------------------------------

@cython.final
cdef class Plan:
    """A network and its rules, flattened into C arrays for explain_single.

    Built once per (network version, rules, bias mode) by ``explain.py`` and
    cached there; it keeps the parameter arrays alive.  Read-only after
    construction, so one plan serves many threads.

    Parameters
    ----------
    specs : list of tuple
        Per layer ``(op, act, rule_code, p1, p2, p3, n_in, n_out, W, b, ln_eps,
        aux1, aux2, aux3)`` with ``op``/``act``/``rule_code`` from
        ``OP_CODES``, ``ACT_CODES``, ``rules.CODE_*`` (-1 for no rule);
        ``W``/``b`` the layer's parameters (LayerNorm: gain and bias; Affine:
        scale and shift) or None; ``aux*`` the rule's extra arrays
        (``Rule.plan_aux``) or None.
    double : bool
        float64 (True) or float32 parameters.
    absorb : bool
        The bias mode.
    logit_layer : int
        k such that the logits are the activation a_k (input of layer k).
    """

    cdef readonly int n_layers
    cdef readonly bint double
    cdef readonly bint absorb
    cdef readonly int logit_layer
    cdef readonly Py_ssize_t n_input, n_output
    cdef int* op
    cdef int* act
    cdef int* code
    cdef int* prep
    cdef double* p1
    cdef double* p2
    cdef double* p3
    cdef double* ln_eps
    cdef Py_ssize_t* n_in
    cdef Py_ssize_t* n_out
    cdef Py_ssize_t* off      # per layer: offset of its scratch in the workspace
    cdef char** W
    cdef char** b
    cdef char** aux           # 3 per layer
    cdef Py_ssize_t ws_size, max_width
    cdef list _keep

    def __cinit__(self, list specs, bint double, bint absorb, int logit_layer):
        cdef int L = len(specs)
        self.n_layers = L
        self.op = <int*>malloc(4 * L * sizeof(int))
        self.p1 = <double*>malloc(4 * L * sizeof(double))
        self.n_in = <Py_ssize_t*>malloc(3 * L * sizeof(Py_ssize_t))
        self.W = <char**>malloc(5 * L * sizeof(char*))
        if self.op == NULL or self.p1 == NULL or self.n_in == NULL or self.W == NULL:
            raise MemoryError()
        self.act = self.op + L
        self.code = self.op + 2 * L
        self.prep = self.op + 3 * L
        self.p2 = self.p1 + L
        self.ln_eps = self.p1 + 2 * L
        self.p3 = self.p1 + 3 * L
        self.n_out = self.n_in + L
        self.off = self.n_in + 2 * L
        self.b = self.W + L
        self.aux = self.W + 2 * L
        self.double = double
        self.absorb = absorb
        self.logit_layer = logit_layer
        self._keep = []
        cdef Py_ssize_t ws = 0, width = 0
        cdef int k
        for k in range(L):
            (op, act, code, p1, p2, p3, n_in, n_out, W, b, ln_eps,
             aux1, aux2, aux3) = specs[k]
            self.op[k] = op
            self.act[k] = act
            self.code[k] = code
            self.p1[k] = p1
            self.p2[k] = p2
            self.p3[k] = p3
            self.ln_eps[k] = ln_eps
            self.n_in[k] = n_in
            self.n_out[k] = n_out
            width = max(width, n_in, n_out)
            if code == RULE_GAMMA_GEN or code == RULE_ALPHA_BETA:
                self.prep[k] = PREP_P       # z-plus needs no N; the others N = s - P
            elif code == RULE_EPSILON and p2 != 0:
                self.prep[k] = PREP_GAMMA
            else:
                self.prep[k] = PREP_NONE
            self.W[k] = self._address(W)
            self.b[k] = self._address(b)
            self.aux[3 * k] = self._address(aux1)
            self.aux[3 * k + 1] = self._address(aux2)
            self.aux[3 * k + 2] = self._address(aux3)
            self.off[k] = ws
            # output, plus for Dense: s and two rule side products
            if op == OP_DENSE:
                ws += 4 * n_out
            elif op != OP_ALIAS:
                ws += n_out
        self.ws_size = ws
        self.max_width = width
        self.n_input = self.n_in[0]
        self.n_output = self.n_out[L - 1]

    cdef char* _address(self, arr) except? NULL:
        cdef const float[::1] f
        cdef const double[::1] d
        if arr is None:
            return NULL
        self._keep.append(arr)
        flat = arr.reshape(-1)
        if self.double:
            d = flat
            return <char*>&d[0]
        f = flat
        return <char*>&f[0]

    def __dealloc__(self):
        free(self.op)
        free(self.p1)
        free(self.n_in)
        free(self.W)




cdef void _layer_forward(Plan plan, int k, const floating* a, floating* ws,
                         floating** out_ptr, int nt) noexcept nogil:
    cdef Py_ssize_t i, n = plan.n_in[k], m = plan.n_out[k]
    cdef floating* out = ws + plan.off[k]
    cdef const floating* g
    cdef const floating* bb
    cdef double mx, tot, mu, var
    cdef int op = plan.op[k]
    if op == OP_ALIAS:
        out_ptr[0] = <floating*>a
        return
    out_ptr[0] = out
    if op == OP_DENSE:
        # workspace: out | s | s1 | s2
        _dense_forward_par(a, <const floating*>plan.W[k], <const floating*>plan.b[k],
                           n, m, plan.act[k], plan.prep[k], plan.p2[k],
                           out + m, out, out + 2 * m, nt)
    elif op == OP_ACT:
        for i in range(m):
            out[i] = _activate(a[i], plan.act[k])
    elif op == OP_SOFTMAX:
        mx = a[0]
        for i in range(m):
            if a[i] > mx:
                mx = a[i]
        tot = 0.0
        for i in range(m):
            tot += exp(a[i] - mx)
        for i in range(m):
            out[i] = <floating>(exp(a[i] - mx) / tot)
    elif op == OP_LAYERNORM:
        g = <const floating*>plan.W[k]
        bb = <const floating*>plan.b[k]
        mu = _sum(a, m) / m
        var = 0.0
        for i in range(m):
            var += (a[i] - mu) * (a[i] - mu)
        var = 1.0 / sqrt(var / m + plan.ln_eps[k])
        for i in range(m):
            out[i] = <floating>((a[i] - mu) * var * g[i] + bb[i])
    elif op == OP_AFFINE:
        g = <const floating*>plan.W[k]
        bb = <const floating*>plan.b[k]
        for i in range(m):
            out[i] = a[i] * g[i] + bb[i]      # y = x * scale + shift


def explain_single(Plan plan, const floating[::1] x, long forced,
                   floating[::1] relevance, floating[::1] output,
                   double[:, ::1] stats, int n_threads=1, seed=None, layer_rel=None):
    """Forward ``x`` once, seed ``R_c = logit_c``, and walk every boundary back.

    ``forced`` is the class to explain, or -1 for the argmax.  Fills
    ``relevance`` (input size), ``output`` (output size) and ``stats``
    (n_layers x 6: sum_in, sum_out and the four shares per layer).  Layers
    with many weights use ``n_threads`` OpenMP threads; the sums are the same
    for any thread count.  ``seed`` (output size), when given, is the top
    relevance instead of the one-hot logit.  ``layer_rel``, when given
    (sum of the layers' input sizes + output size), receives the relevance at
    the input of every layer, input side first, then the top relevance.
    Returns ``(class, logit, finite)``: ``finite`` is False when the logit or
    any relevance overflowed (the caller raises).
    """
    cdef int L = plan.n_layers, k, code
    cdef Py_ssize_t i, n, m, cls = 0, lr_off = 0
    cdef Py_ssize_t width = plan.max_width
    cdef const floating[::1] seed_v
    cdef floating[::1] lr_v
    cdef bint has_seed = seed is not None, has_lr = layer_rel is not None
    cdef floating* lr = NULL
    if has_seed:
        seed_v = seed
    if has_lr:
        lr_v = layer_rel
        lr = &lr_v[0]
        for k in range(L):
            lr_off += plan.n_in[k]
    cdef floating* ws = <floating*>malloc((plan.ws_size + 4 * width) * sizeof(floating))
    cdef floating** acts = <floating**>malloc((L + 1) * sizeof(floating*))
    cdef floating* R
    cdef floating* Rin
    cdef floating* tmp
    cdef floating* q1
    cdef floating* q2
    cdef floating* lay
    cdef const floating* a
    cdef const floating* b
    cdef const floating* W
    cdef const floating* x1
    cdef double logit = 0.0
    cdef bint finite = True
    if ws == NULL or acts == NULL:
        free(ws)
        free(acts)
        raise MemoryError()
    R = ws + plan.ws_size
    Rin = R + width
    q1 = Rin + width
    q2 = q1 + width
    try:
        with nogil:
            acts[0] = <floating*>&x[0]
            for k in range(L):
                _layer_forward(plan, k, acts[k], ws, &acts[k + 1], n_threads)
            m = plan.n_output
            for i in range(m):
                output[i] = acts[L][i]
            if forced >= 0:
                cls = forced
            else:
                for i in range(1, m):
                    if acts[L][i] > acts[L][cls]:
                        cls = i
            logit = acts[plan.logit_layer][cls]
            if has_seed:
                for i in range(m):
                    R[i] = seed_v[i]
            else:
                for i in range(m):
                    R[i] = 0
                R[cls] = <floating>logit
            if has_lr:
                for i in range(m):
                    lr[lr_off + i] = R[i]
            for k in range(L - 1, -1, -1):
                n = plan.n_in[k]
                m = plan.n_out[k]
                for i in range(2, N_STATS):
                    stats[k, i] = 0.0
                stats[k, ST_SUM_OUT] = _sum(R, m)
                code = plan.code[k]
                if plan.op[k] == OP_DENSE and code != RULE_NONE:
                    a = acts[k]
                    b = <const floating*>plan.b[k]
                    W = <const floating*>plan.W[k]
                    x1 = <const floating*>plan.aux[3 * k]
                    lay = ws + plan.off[k]          # out | s | s1 | s2
                    if code == RULE_ALPHA_BETA:
                        # z-plus (beta = 0) reads no N: P stands in for it
                        if plan.p2[k] != 0:
                            _n_from_s_p(a, W, n, m, m, lay + m, lay + 2 * m, lay + 3 * m)
                        _ab_q_row(lay + 2 * m, lay + (3 if plan.p2[k] != 0 else 2) * m,
                                  b, m, plan.p1[k], plan.p2[k], plan.p3[k], plan.absorb,
                                  R, q1, q2, &stats[k, ST_SHARES])
                    elif code == RULE_GAMMA_GEN:
                        for i in range(m):
                            lay[3 * m + i] = lay[m + i] - lay[2 * m + i]    # N = s - P
                        _gg_q_row(lay + m, lay + 2 * m, lay + 3 * m, b, m, plan.p2[k],
                                  plan.p1[k], plan.absorb, R, q1, q2, &stats[k, ST_SHARES])
                    elif code == RULE_WSQUARE:
                        _wsq_q_row(x1, b, m, plan.p1[k], plan.absorb, R, q1,
                                   &stats[k, ST_SHARES])
                    elif code == RULE_ZBOX:
                        for i in range(m):
                            Rin[i] = lay[m + i] - x1[i]     # d = s - l @ W+ - h @ W-
                        _eps_q_row(Rin, b, m, plan.p1[k], 0.0, False, R, q1, q2,
                                   &stats[k, ST_SHARES])
                    elif code == RULE_EPSILON:
                        _eps_q_row(lay + 2 * m if plan.p2[k] != 0 else lay + m, b, m,
                                   plan.p1[k], plan.p2[k], plan.absorb, R, q1, q2,
                                   &stats[k, ST_SHARES])
                    if code == RULE_FLAT:
                        _flat_backward(R, n, m, Rin)
                    else:
                        _backward_par(code, a, W, n, m, plan.p2[k], q1, q2,
                                      <const floating*>plan.aux[3 * k + 1],
                                      <const floating*>plan.aux[3 * k + 2], Rin, n_threads)
                    tmp = R
                    R = Rin
                    Rin = tmp
                stats[k, ST_SUM_IN] = _sum(R, n)
                if has_lr:
                    lr_off -= n
                    for i in range(n):
                        lr[lr_off + i] = R[i]
                # a NaN or Inf relevance makes its boundary's sum non-finite
                finite = finite and isfinite(stats[k, ST_SUM_IN]) and \
                    isfinite(stats[k, ST_SUM_OUT])
            finite = finite and isfinite(logit)
            for i in range(plan.n_input):
                relevance[i] = R[i]
    finally:
        free(ws)
        free(acts)
    return cls, logit, finite
