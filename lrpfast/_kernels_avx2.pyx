# cython: language_level=3
# The kernels of _kernels.pyx, compiled with -mavx2 -mfma (see setup.py).
# lrpfast/_dispatch.py imports this module only on CPUs that have both.
include "_kernels.pyx"
