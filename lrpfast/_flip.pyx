"""Kernel of lrpfast.evaluate: the rank-k update of a first-layer pre-activation.

Validation happens in ``evaluate.py``; this kernel assumes shapes agree and
every index is in range.
"""

from cython cimport floating


def rank_update(double[:, ::1] Z, const floating[:, ::1] W,
                const Py_ssize_t[:, ::1] order, const double[:, ::1] delta,
                Py_ssize_t lo, Py_ssize_t hi):
    """Add one pixel-flipping step to the pre-activation ``Z`` in place.

    For every probe ``b``, with ``sel = order[b, lo:hi]``::

        Z[b] += delta[b, lo:hi] @ W[sel]

    ``W`` is read in its own dtype and accumulated in float64, so the running
    sum over the steps stays exact to float64 rounding.
    """
    cdef Py_ssize_t B = Z.shape[0], M = Z.shape[1]
    cdef Py_ssize_t b, j, m, f
    cdef double d
    with nogil:
        for b in range(B):
            for j in range(lo, hi):
                f = order[b, j]
                d = delta[b, j]
                if d == 0.0:
                    continue
                for m in range(M):
                    Z[b, m] += d * W[f, m]
