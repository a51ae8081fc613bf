"""Shared fixtures, the per-dtype tolerance table and data makers.

Tolerances are relative to a magnitude: a value ``actual`` passes when
``|actual - expected| <= TOL[dtype] * (|expected| + mag)``, where ``mag`` is
the size of the terms that make up ``expected`` times the conditioning of its
denominators (computed by ``_loops``).  So float32 is judged by float32
rounding of the numbers actually involved, never by a blanket atol.
"""

import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Keras needs a backend before it is first imported; torch is the one CI
# installs (a backend chosen by the caller wins).
os.environ.setdefault("KERAS_BACKEND", "torch")

# ``import _loops`` works under every pytest import mode.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

settings.register_profile(
    "lrpfast", max_examples=60, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("LRPFAST_HYPOTHESIS_PROFILE", "lrpfast"))

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Relative tolerance per dtype, applied to |expected| + magnitude.
TOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}
# Floor for values that are zero in exact arithmetic.
TINY = {np.dtype(np.float32): 1e-30, np.dtype(np.float64): 1e-290}


def assert_close(actual, expected, dtype, mag=0.0, what="value"):
    """Element-wise ``|actual - expected| <= TOL * (|expected| + mag) + TINY``."""
    dtype = np.dtype(dtype)
    act = np.asarray(actual, dtype=np.float64)
    exp = np.asarray(expected, dtype=np.float64)
    assert act.shape == exp.shape, f"{what}: shape {act.shape} != {exp.shape}"
    assert np.isfinite(act).all(), f"{what}: non-finite values {act}"
    bound = TOL[dtype] * (np.abs(exp) + np.abs(np.asarray(mag, np.float64))) + TINY[dtype]
    err = np.abs(act - exp)
    bad = ~(err <= bound)
    if bad.any():
        idx = np.unravel_index(np.argmax(np.where(bad, err / bound, 0)), bad.shape) \
            if act.ndim else ()
        raise AssertionError(
            f"{what} ({dtype}): {int(bad.sum())} of {bad.size} values off; worst at "
            f"{idx}: got {act[idx]!r}, expected {exp[idx]!r}, |diff| {err[idx]:.3g} > "
            f"bound {np.broadcast_to(bound, act.shape)[idx]:.3g}")


def make_dense_data(rng, n, m, dtype, *, inputs="signed", bias="signed",
                    zero_column=False, R_zero=True):
    """Random ``a (n,), W (n, m), b (m,), R (m,)`` in ``dtype``, C-contiguous.

    ``inputs``: "signed" (normal) or "nonneg" (ReLU-like, about half exact
    zeros).  ``bias``: "zero" or "signed".  ``zero_column`` zeroes the last
    weight column (P_j = N_j = 0 by default: a degenerate alpha-beta neuron,
    a d_j = 0 epsilon neuron).  ``R_zero`` zeroes one upper relevance.
    """
    a = rng.normal(size=n)
    if inputs == "nonneg":
        a = np.maximum(a, 0.0)
    W = rng.normal(size=(n, m)) / np.sqrt(n)
    if zero_column:
        W[:, -1] = 0.0
    b = np.zeros(m) if bias == "zero" else rng.normal(scale=0.5, size=m)
    R = rng.normal(size=m)
    if R_zero and m > 1:
        R[0] = 0.0
    cast = lambda v: np.ascontiguousarray(v, dtype=dtype)
    return cast(a), cast(W), cast(b), cast(R)


def randomize_params(net, seed=0, bias_scale=0.3):
    """Give every Dense layer a non-zero bias (the init makes it zero)."""
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        if type(layer).__name__ == "Dense":
            layer.bias = rng.normal(scale=bias_scale, size=layer.bias.shape)
        elif type(layer).__name__ == "LayerNorm":
            layer.weight = 1.0 + rng.normal(scale=0.2, size=layer.weight.shape)
            layer.bias = rng.normal(scale=0.2, size=layer.bias.shape)
    return net


def param_bytes(net):
    """Bytes of every parameter array of the network, in layer order."""
    out = []
    for layer in net.layers:
        for name in ("weight", "bias"):
            p = getattr(layer, name, None)
            if isinstance(p, np.ndarray):
                out.append((layer.name, name, p.dtype.str, p.shape, p.tobytes()))
    return out


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


@pytest.fixture(params=DTYPES, ids=lambda d: d.name)
def dtype(request):
    return request.param


def kernel_modules():
    """The kernel modules to test: the baseline, plus the AVX2 build where it runs."""
    from lrpfast import _dispatch
    mods = [_dispatch.baseline]
    try:
        fast = _dispatch.select("avx2")
    except (RuntimeError, ImportError):
        fast = None
    if fast is not None and fast is not _dispatch.baseline:
        mods.append(fast)
    return mods
