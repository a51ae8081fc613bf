"""The 6x6 blob task."""

import numpy as np
import pytest

from lrpfast.datasets import blob_mask, blob_positions, blobs


def test_shapes_dtypes_and_balanced_labels():
    X, y = blobs(25, noise=0.1, seed=0)
    assert X.shape == (25, 1, 6, 6) and X.dtype == np.float32
    assert y.shape == (25,) and y.dtype == np.int64
    assert np.bincount(y).tolist() == [13, 12]
    assert not np.array_equal(y, np.arange(25) % 2)  # shuffled


@pytest.mark.parametrize("noise", [0.0, 0.1, 0.3])
def test_blob_and_background_values(noise):
    X, y = blobs(200, noise=noise, seed=1)
    for k in (0, 1):
        rows = X[y == k]
        blob = rows[:, blob_mask(k)]
        back = rows[:, ~blob_mask(k)]
        assert blob.shape[1] == 4
        assert blob.min() >= 1.0 and blob.max() <= 1.2
        assert back.min() >= 0.0 and back.max() <= noise
        if noise:
            assert back.max() > 0.9 * noise  # really uniform up to noise


def test_blob_positions():
    assert blob_positions(0) == [(0, 0, 0), (0, 1, 0), (0, 0, 1), (0, 1, 1)]
    assert blob_positions(1) == [(0, 4, 4), (0, 5, 4), (0, 4, 5), (0, 5, 5)]
    m = blob_mask(1)
    assert m[0, 4:, 4:].all() and m.sum() == 4


def test_forced_class_and_seeding():
    X, y = blobs(6, noise=0.05, seed=3, cls=1)
    assert (y == 1).all()
    assert (X[:, blob_mask(1)] >= 1).all()
    X2, y2 = blobs(6, noise=0.05, seed=3, cls=1)
    assert X.tobytes() == X2.tobytes()
    rng = np.random.default_rng(0)
    a, _ = blobs(3, 0.1, seed=rng)
    b, _ = blobs(3, 0.1, seed=rng)
    assert not np.array_equal(a, b)  # a Generator is advanced: fresh samples


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(n=0, noise=0.1), ValueError, "n must be"),
    (dict(n=2.0, noise=0.1), TypeError, "n must be an int"),
    (dict(n=2, noise=-0.1), ValueError, "noise"),
    (dict(n=2, noise=float("nan")), ValueError, "noise"),
    (dict(n=2, noise="0.1"), TypeError, "noise"),
    (dict(n=2, noise=0.1, cls=2), ValueError, "cls must be 0 or 1"),
    (dict(n=2, noise=0.1, cls="0"), TypeError, "cls"),
    (dict(n=2, noise=0.1, seed=-3), ValueError, "seed"),
    (dict(n=2, noise=0.1, seed=1.5), TypeError, "seed"),
])
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        blobs(**kwargs)
