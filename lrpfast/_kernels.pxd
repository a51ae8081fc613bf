# Shared cdef signatures of lrpfast's kernels (see _kernels.pyx for the math).
from cython cimport floating

cdef floating _activate(floating z, int code) noexcept nogil

cdef void _dense_forward(const floating* a, const floating* W, const floating* b,
                         Py_ssize_t n, Py_ssize_t m, Py_ssize_t ld, int act, int prep,
                         double gam, floating* s, floating* out,
                         floating* s1) noexcept nogil

cdef void _eps_q_row(const floating* s, const floating* b, Py_ssize_t m, double eps,
                     double gam, bint absorb, const floating* R, floating* q,
                     floating* st, double* shares) noexcept nogil

cdef void _ab_q_row(const floating* P, const floating* N, const floating* b,
                    Py_ssize_t m, double alpha, double beta, double eps, bint absorb,
                    const floating* R, floating* qp, floating* qn,
                    double* shares) noexcept nogil

cdef void _eps_backward(const floating* a, const floating* W, Py_ssize_t n,
                        Py_ssize_t m, double gam, const floating* q,
                        floating* Rin) noexcept nogil

cdef void _ab_backward(const floating* a, const floating* W, Py_ssize_t n,
                       Py_ssize_t m, const floating* qp, const floating* qn,
                       floating* Rin) noexcept nogil
