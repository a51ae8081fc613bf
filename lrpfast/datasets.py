"""The synthetic 6x6x1 two-class blob task of the original LRPReport example (the demo).

Class 0 is a bright 2x2 blob in the top-left corner of a 6x6 image, class 1
the same blob in the bottom-right corner, over a dim noisy background.  A
dense network separates them easily, and a good explanation puts its
relevance on the blob: that is what ``lrpfast demo`` shows.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_int, check_real, check_rng

__all__ = ["SHAPE", "BLOB", "blob_mask", "blob_positions", "blobs"]

#: Shape of one sample, ``(channels, height, width)``.
SHAPE = (1, 6, 6)

#: Top-left corner ``(y, x)`` of the 2x2 blob of each class.
BLOB = {0: (0, 0), 1: (4, 4)}


def _check_cls(cls, name="cls"):
    cls = check_int(cls, name)
    if cls not in BLOB:
        raise ValueError(f"{name} must be 0 or 1 (or None), got {cls}")
    return cls


def blob_mask(cls):
    """Boolean mask of shape (1, 6, 6) that is True on the blob of class ``cls``.

    Parameters
    ----------
    cls : {0, 1}

    Returns
    -------
    ndarray of bool, shape (1, 6, 6)
    """
    cls = _check_cls(cls)
    y0, x0 = BLOB[cls]
    mask = np.zeros(SHAPE, dtype=bool)
    mask[0, y0:y0 + 2, x0:x0 + 2] = True
    return mask


def blob_positions(cls):
    """The four blob positions of class ``cls`` as ``(channel, x, y)`` tuples.

    Sorted by flat index ``(c*H + y)*W + x``, as the report prints them.
    """
    c, ys, xs = np.nonzero(blob_mask(cls))
    return [(int(ci), int(xi), int(yi)) for ci, yi, xi in zip(c, ys, xs)]


def blobs(n, noise, seed=None, cls=None):
    """Samples of the 6x6 blob task.

    Every pixel is background ``U(0, noise)`` except the 2x2 blob of the
    sample's class, whose pixels are ``1 + U(0, 0.2)``.  Class 0 has its blob
    in the top-left corner (rows 0-1, columns 0-1), class 1 in the
    bottom-right corner (rows 4-5, columns 4-5).

    Parameters
    ----------
    n : int
        Number of samples, >= 1.
    noise : float
        Upper bound of the background noise, >= 0 (0 gives a black
        background).
    seed : int, numpy.random.Generator or None
        Random source; a Generator is advanced, so successive calls give
        fresh samples.
    cls : {0, 1} or None
        Give every sample this class.  With ``None`` the labels are
        *balanced*: ``ceil(n/2)`` samples of class 0 and ``floor(n/2)`` of
        class 1, in random order.

    Returns
    -------
    X : ndarray of float32, shape (n, 1, 6, 6)
    y : ndarray of int64, shape (n,)

    Examples
    --------
    >>> X, y = blobs(4, noise=0.1, seed=0)
    >>> X.shape, X.dtype, y.dtype
    ((4, 1, 6, 6), dtype('float32'), dtype('int64'))
    """
    n = check_int(n, "n", low=1)
    noise = check_real(noise, "noise", low=0.0)
    if cls is not None:
        cls = _check_cls(cls)
    rng = check_rng(seed)
    if cls is None:
        y = rng.permutation(np.arange(n) % 2).astype(np.int64)
    else:
        y = np.full(n, cls, dtype=np.int64)
    X = rng.uniform(0.0, noise, size=(n,) + SHAPE) if noise > 0 else np.zeros((n,) + SHAPE)
    blob = 1.0 + rng.uniform(0.0, 0.2, size=(n, 2, 2))
    for k in BLOB:
        y0, x0 = BLOB[k]
        rows = y == k
        X[rows, 0, y0:y0 + 2, x0:x0 + 2] = blob[rows]
    return X.astype(np.float32), y
