"""Pick the compiled kernels for this CPU.

``_kernels`` is built for the baseline of the platform (x86-64: SSE2).
Where the compiler can, setup.py also builds ``_kernels_avx2`` from the same
source with ``-mavx2 -mfma``; it is imported only after the baseline module
has checked that the CPU has both, so no unsupported instruction ever runs.
``LRPFAST_KERNELS=baseline`` (or ``avx2``) overrides the choice.
"""

import os

from . import _kernels as baseline

CHOICES = ("auto", "baseline", "avx2")


def select(choice=None):
    """The kernel module for ``choice`` ("auto", "baseline" or "avx2")."""
    choice = os.environ.get("LRPFAST_KERNELS", "auto") if choice is None else choice
    if choice not in CHOICES:
        raise ValueError(f"LRPFAST_KERNELS must be one of {', '.join(CHOICES)}; "
                         f"got {choice!r}")
    if choice == "baseline":
        return baseline
    if not baseline.cpu_has_avx2_fma():
        if choice == "avx2":
            raise RuntimeError("LRPFAST_KERNELS=avx2, but this CPU lacks AVX2/FMA")
        return baseline
    try:
        from . import _kernels_avx2
    except ImportError:
        if choice == "avx2":
            raise
        return baseline
    return _kernels_avx2


kernels = select()
