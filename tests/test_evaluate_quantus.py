"""lrpfast.evaluate.pixel_flipping against Quantus 0.6 ``PixelFlipping``.

Same torch model (read through ``lf.from_torch``), same attributions, a
numeric baseline.  Quantus records no unperturbed point, so its per-step
scores are ``curves[:, 1:]``.  Skips cleanly where quantus does not import.

Where the two cannot be made equal:

- Quantus needs ``features_in_step`` to divide the number of features
  (it asserts); lrpfast makes the last step shorter instead
  (``test_quantus_refuses_a_short_last_step``).
- Quantus orders by ``np.argsort(-a)`` (NumPy's default, unstable sort), so
  tied relevance may be visited in another order; lrpfast sends ties to the
  lower flat index.  The comparison uses tie-free attributions.
- Quantus's default ``normalise=True`` rescales the attributions; that keeps
  the order of distinct values but can round two float32 values into a tie,
  so the comparison passes ``normalise=False``.
"""

import warnings

import numpy as np
import pytest

import lrpfast as lf

torch = pytest.importorskip("torch")
try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import quantus
except Exception as exc:  # pragma: no cover - depends on the environment
    pytest.skip(f"quantus cannot be imported here: {exc}", allow_module_level=True)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 16), torch.nn.ReLU(),
                                torch.nn.Linear(16, 12), torch.nn.Tanh(),
                                torch.nn.Linear(12, 3)).eval()
    net = lf.from_torch(model, input_shape=(1, 6, 6))
    X = np.random.default_rng(0).uniform(0, 1, (16, 1, 6, 6)).astype(np.float32)
    b = lf.explain_batch(net, X, rule="epsilon")
    A = b.relevance.astype(np.float32)
    # tie-free attributions (see the module docstring)
    flat = A.reshape(len(A), -1)
    assert all(len(np.unique(row)) == row.size for row in flat)
    return model, net, X, b, A


def quantus_curves(model, X, y, A, k, baseline, softmax):
    metric = quantus.PixelFlipping(features_in_step=k, perturb_baseline=baseline,
                                   normalise=False, abs=False, disable_warnings=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array(metric(model=model, x_batch=X, y_batch=y, a_batch=A,
                               channel_first=True, softmax=softmax, device="cpu"))


@pytest.mark.parametrize("k", [1, 4, 9])
@pytest.mark.parametrize("score", ["probability", "logit"])
def test_pixel_flipping_equals_quantus(setup, k, score):
    model, net, X, b, A = setup
    baseline = 0.3
    q = quantus_curves(model, X, b.explained_class, A, k, baseline, score == "probability")
    r = lf.evaluate.pixel_flipping(net, X, b, features_per_step=k, baseline=baseline,
                                   score=score)
    assert q.shape == (16, 36 // k) == r.curves[:, 1:].shape
    # float32 model: torch recomputes in float32, lrpfast updates the first
    # layer in float64; the difference is float32 rounding.
    np.testing.assert_allclose(r.curves[:, 1:], q, rtol=1e-5, atol=1e-6)


def test_quantus_refuses_a_short_last_step(setup):
    model, net, X, b, A = setup
    with pytest.raises(AssertionError, match="features_in_step"):
        quantus_curves(model, X, b.explained_class, A, 5, 0.3, True)
    r = lf.evaluate.pixel_flipping(net, X, b, features_per_step=5, baseline=0.3)
    assert r.curves.shape == (16, 9) and r.fraction[-2] == pytest.approx(35 / 36)
    # the steps Quantus could take agree with it at features_in_step = 1
    q1 = quantus_curves(model, X, b.explained_class, A, 1, 0.3, True)
    # (5, 10, ..., 35 features, then all 36)
    np.testing.assert_allclose(r.curves[:, 1:], q1[:, [4, 9, 14, 19, 24, 29, 34, 35]],
                               rtol=1e-5, atol=1e-6)
