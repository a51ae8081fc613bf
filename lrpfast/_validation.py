"""Input validation shared by every public entry point.

Kernels assume valid input; everything a user can hand to lrpfast passes
through one of these functions first.  Each error message names the argument,
what it got and what it accepts.
"""

from __future__ import annotations

import math
import numbers
import os

import numpy as np

DTYPES = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}


def check_dtype(dtype, name="dtype"):
    """Return the numpy dtype for ``"float32"``/``"float64"`` (or their numpy types)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in DTYPES:
        raise ValueError(
            f"{name} must be 'float32' or 'float64', got {dtype!r}"
        )
    return dt


def as_float_array(value, name, dtype, *, shape=None, ndim=None, copy=False,
                   batch_ndim=None):
    """Convert ``value`` to a C-contiguous float array of ``dtype``, checked.

    Integers, booleans and float16/float32/float64 are cast; strings, objects
    and complex numbers are refused with a ``TypeError``.  NaN and Inf (also
    values that overflow ``dtype``) are refused with a ``ValueError`` that
    names the first bad index.  ``shape`` (a tuple, ``None`` entries are
    free) and ``ndim`` are checked when given.  When the array has
    ``batch_ndim`` dimensions its first axis is a batch, and the message names
    the row too.
    """
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a numeric array, got a {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be a numeric array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold real numbers (int or float), got dtype {arr.dtype}"
        )
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    if shape is not None:
        ok = arr.ndim == len(shape) and all(
            s is None or s == a for s, a in zip(shape, arr.shape)
        )
        if not ok:
            want = tuple("*" if s is None else s for s in shape)
            raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    if arr.dtype == dtype and not copy:
        out = np.ascontiguousarray(arr)       # the common case: no cast
    else:
        # values too large for float32 become Inf: reported below
        with np.errstate(over="ignore", invalid="ignore"):
            out = np.array(arr, dtype=dtype, order="C", copy=True) if copy else \
                np.ascontiguousarray(arr, dtype=dtype)
    if not _all_finite(out):
        _refuse_non_finite(arr, out, name, dtype, batch_ndim)
    return out


def check_batch_layout(name, dtype, shape, input_shape):
    """Refuse a batch (a file or a lazy array, checked without reading it) that
    is not real-valued, not of shape ``(B, *input_shape)`` or empty."""
    if dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers (int or float), got dtype {dtype}")
    if len(shape) != len(input_shape) + 1 or tuple(shape[1:]) != tuple(input_shape):
        raise ValueError(f"{name} must have shape (B, {', '.join(map(str, input_shape))}), "
                         f"got {shape}")
    if shape[0] == 0:
        raise ValueError(f"{name} is an empty batch of shape {shape}")


def first_non_finite_row(x):
    """``(row, "NaN" or "Inf")`` of the first row of the batch ``x`` that holds a
    non-finite value, or None (always None for integer data)."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        return None
    rows = np.flatnonzero(~np.isfinite(x.reshape(x.shape[0], -1)).all(axis=1))
    if not rows.size:
        return None
    r = int(rows[0])
    return r, "NaN" if np.isnan(x[r]).any() else "Inf"


def _refuse_non_finite(arr, out, name, dtype, batch_ndim):
    """Raise the ValueError for a non-finite ``out``, naming the first bad value."""
    nan = np.isnan(out)
    if nan.any():
        bad, mask = "NaN", nan
    elif arr.dtype.kind == "f" and np.isfinite(arr).all():
        bad = f"values outside the {np.dtype(dtype).name} range (they become Inf)"
        mask = ~np.isfinite(out)
    else:
        bad, mask = "Inf", ~np.isfinite(out)
    count = int(mask.sum())
    where = ""
    if out.ndim:
        first = tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), out.shape))
        index = f"{name}[{', '.join(map(str, first))}]"
        if batch_ndim is not None and out.ndim == batch_ndim:
            rows = int(mask.reshape(out.shape[0], -1).any(axis=1).sum())
            where = (f" in {rows} row{'s' if rows > 1 else ''}; the first is row "
                     f"{first[0]}, at {index}")
        else:
            where = f" at {count} position{'s' if count > 1 else ''}; the first is {index}"
    raise ValueError(f"{name} contains {bad}{where} (all values must be finite)")


def _all_finite(a):
    """True when no value of ``a`` is NaN or Inf, without a warning.

    For float32 one float64 sum decides (cheaper than isfinite on every
    element, which matters on the single-probe path): it cannot overflow,
    and a NaN or Inf anywhere makes it non-finite.
    """
    if a.dtype == np.float32:
        return math.isfinite(a.sum(dtype=np.float64))
    return bool(np.isfinite(a).all())


def check_real(value, name, *, low=None, high=None, low_inclusive=True,
               what=None):
    """Validate a finite real scalar within an optional range; return float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    too_low = low is not None and (v < low if low_inclusive else v <= low)
    too_high = high is not None and v > high
    if too_low or too_high:
        if what is None:
            op = ">=" if low_inclusive else ">"
            parts = []
            if low is not None:
                parts.append(f"{op} {low}")
            if high is not None:
                parts.append(f"<= {high}")
            what = " and ".join(parts)
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return v


def check_out_file(path, name):
    """The folder of an output file ``path``; refuse a missing folder or a folder
    given as the file (FileNotFoundError / IsADirectoryError naming ``name``)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{name}: no such folder: {folder!r}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{name}: {path!r} is a folder, not a file")
    return folder


def check_rng(seed, name="seed", *, allow_none=True):
    """A ``numpy.random.Generator`` from ``seed``: a Generator (returned as it
    is), an int >= 0, or (with ``allow_none``) None for fresh entropy."""
    if isinstance(seed, np.random.Generator) or (seed is None and allow_none):
        return np.random.default_rng(seed)
    return np.random.default_rng(check_int(seed, name, low=0))


def check_bool(value, name):
    """Return ``value`` as a bool; only True/False (or numpy bools) are accepted."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_int(value, name, *, low=None, high=None):
    """Validate an integer (numpy integers accepted, bools refused) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        rng = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an int {rng}, got {v}")
    return v


def check_class(value, name, n_outputs):
    """Validate a class index in ``[0, n_outputs - 1]``; return int.

    A network with one output is a binary (logistic) classifier: its single
    logit speaks for the positive class, so the only class to explain is 0,
    and the message says so rather than only quoting the range.
    """
    if n_outputs == 1 and not isinstance(value, bool) and isinstance(
            value, numbers.Integral) and int(value) != 0:
        raise ValueError(
            f"{name} must be 0 for a network with a single output, got {int(value)}: "
            "a one-output (sigmoid/logistic) classifier has one logit, log(p / (1 - p)), "
            "for the positive class. Explain class 0 and read its relevance both ways: "
            "positive relevance speaks for the positive class, negative relevance for "
            "the other one")
    return check_int(value, name, low=0, high=n_outputs - 1)


def check_class_array(value, name, B, n_classes, *, check_values=True):
    """Validate one class per row of a batch of ``B``: None, an int, or ``B`` ints.

    Returns None, or an int64 array of shape ``(B,)`` (an int is repeated).
    A value out of ``[0, n_classes - 1]`` is refused; on a network with one
    output with :func:`check_class`'s message on the one logit.  With
    ``check_values=False`` (a lazy array, e.g. a dask array, whose values are
    checked later) only its dtype and shape are checked and it is returned as
    it is.
    """
    if value is None:
        return None
    if check_values and np.ndim(value) == 0:
        return np.full(B, check_class(value, name, n_classes), dtype=np.int64)
    arr = np.asarray(value) if check_values else value
    if arr.dtype.kind not in "iu" or tuple(arr.shape) != (B,):
        raise ValueError(
            f"{name} must be None, an int or an array of {B} ints (one per probe), got "
            f"dtype {arr.dtype} and shape {tuple(arr.shape)}")
    if not check_values:
        return value
    lo, hi = arr.min(), arr.max()
    if lo < 0 or hi >= n_classes:
        if n_classes == 1:
            check_class(int(hi) if hi >= 1 else int(lo), name, 1)
        raise ValueError(
            f"{name} values must be in [0, {n_classes - 1}] (the network's outputs), "
            f"got [{lo}, {hi}]")
    return arr.astype(np.int64)


def check_choice(value, name, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}"
        )
    return value
