"""Trainer: finite-difference gradient check, convergence, validation."""

import numpy as np
import pytest

from lrpfast.datasets import blobs
from lrpfast.layers import (Affine, Dense, Dropout, Flatten, Identity, LayerNorm, ReLU,
                            Sigmoid, SoftMax, Tanh)
from lrpfast.network import Network
from lrpfast.train import History, Trainer, _loss_and_grads, train


def _blob_net(seed=0, dtype="float32"):
    return Network((1, 6, 6), [Dense(16, "relu"), Dense(12, "relu"),
                               Dense(2, "linear"), SoftMax()], dtype=dtype, seed=seed)


def _grad_check_net(trailing_softmax):
    """A float64 net with every layer type the trainer supports."""
    layers = [Flatten(), Affine(name="scaler"), Dense(7, "tanh"), Dense(6, "sigmoid"),
              Dropout(0.3), Dense(6, "relu"), Affine(), LayerNorm(), Dense(5, "linear"),
              ReLU(), Tanh(),
              Identity(), Sigmoid(), SoftMax(), Dense(3, "linear")]
    if trailing_softmax:
        layers.append(SoftMax())
    net = Network((2, 2, 3), layers, dtype="float64", seed=1)
    rng = np.random.default_rng(2)
    # Non-trivial LayerNorm parameters and biases, so their gradients matter.
    for layer in net.layers:
        if isinstance(layer, (Dense, LayerNorm)):
            layer.bias = rng.normal(0, 0.3, layer.bias.shape)
        if isinstance(layer, LayerNorm):
            layer.weight = 1 + rng.normal(0, 0.3, layer.weight.shape)
        if isinstance(layer, Affine):
            layer.scale = rng.normal(1, 0.5, layer.scale.shape)
            layer.shift = rng.normal(0, 0.3, layer.shift.shape)
    return net


def _loss(net, A, y, seed):
    rng = None if seed is None else np.random.default_rng(seed)
    return _loss_and_grads(net, A, y, rng)[0]


@pytest.mark.parametrize("trailing_softmax", [True, False])
@pytest.mark.parametrize("dropout_seed", [None, 7])
def test_gradients_match_finite_differences(trailing_softmax, dropout_seed):
    net = _grad_check_net(trailing_softmax)
    rng = np.random.default_rng(3)
    A = rng.normal(size=(5, 12))
    y = np.array([0, 1, 2, 1, 0])
    # Same seed -> same dropout masks in every evaluation of the loss.
    gen = None if dropout_seed is None else np.random.default_rng(dropout_seed)
    _, grads, _ = _loss_and_grads(net, A, y, gen)
    h = 1e-6
    checked = 0
    for k, layer in enumerate(net.layers):
        for name, value in layer.params().items():
            numeric = np.zeros_like(value)
            for idx in np.ndindex(value.shape):
                for sign in (+1, -1):
                    w = value.copy()
                    w[idx] += sign * h
                    setattr(layer, name, w)
                    numeric[idx] += sign * _loss(net, A, y, dropout_seed) / (2 * h)
                setattr(layer, name, value)
            np.testing.assert_allclose(grads[k][name], numeric, rtol=1e-5, atol=1e-8,
                                       err_msg=f"layer {k} {layer.describe()} {name}")
            checked += 1
    # five Dense layers and one LayerNorm (weight + bias), two Affine (scale + shift)
    assert checked == 2 * 8


def test_loss_goes_through_trailing_softmax_logits():
    net = _blob_net(dtype="float64")
    X, y = blobs(10, 0.1, seed=0)
    A = X.reshape(10, -1).astype(np.float64)
    loss = _loss(net, A, y, None)
    logits = net._trace(A)[-2]
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    assert loss == pytest.approx(-logp[np.arange(10), y].mean(), rel=1e-12)


def test_train_reaches_full_accuracy_on_blobs():
    net = _blob_net(seed=0)
    X, y = blobs(240, noise=0.1, seed=0)
    hist = train(net, X, y, epochs=15, seed=0)
    assert isinstance(hist, History)
    assert len(hist["loss"]) == len(hist["accuracy"]) == 15
    assert hist.accuracy[-1] == 1.0
    assert hist.loss[-1] < hist.loss[0]
    Xt, yt = blobs(200, noise=0.1, seed=1)
    assert (net.forward(Xt).argmax(axis=1) == yt).mean() == 1.0


def test_train_is_deterministic_and_keeps_dtype():
    X, y = blobs(48, noise=0.1, seed=3)
    nets = []
    for _ in range(2):
        net = Network((1, 6, 6), [Dense(8, "relu"), Dropout(0.2), Dense(2)], seed=5)
        train(net, X, y, epochs=3, batch_size=8, seed=9)
        nets.append(net)
    for a, b in zip(nets[0].layers, nets[1].layers):
        for name, p in a.params().items():
            assert p.dtype == np.float32
            assert p.tobytes() == getattr(b, name).tobytes()


def test_trainer_keeps_momentum_across_fresh_data():
    net = _blob_net(seed=2)
    tr = Trainer(net, lr=0.01, momentum=0.9, seed=2)
    rng = np.random.default_rng(2)
    for _ in range(30):
        tr.epoch(*blobs(24, 0.1, seed=rng))
    assert len(tr.history) == 30
    assert any(np.abs(v).sum() > 0 for vel in tr._velocity for v in vel.values())


def test_verbose_prints_epochs(capsys):
    net = _blob_net(seed=0)
    X, y = blobs(24, 0.1, seed=0)
    train(net, X, y, epochs=2, verbose=True, seed=0)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [["epoch", "1"], ["epoch", "2"]]
    assert all("train-acc=" in line for line in lines)


def test_diverging_step_raises_and_keeps_weights():
    net = _blob_net(seed=0)
    X, y = blobs(24, 0.1, seed=0)
    X = X * 1e30
    before = [layer.weight.copy() for layer in net.dense_layers]
    with pytest.raises(FloatingPointError, match="diverged"):
        train(net, X, y, epochs=5, lr=1e30, seed=0)
    for w, layer in zip(before, net.dense_layers):
        assert np.array_equal(w, layer.weight)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(epochs=0), ValueError, "epochs"),
    (dict(epochs=1.5), TypeError, "epochs"),
    (dict(epochs=True), TypeError, "epochs"),
    (dict(epochs=1, batch_size=0), ValueError, "batch_size"),
    (dict(epochs=1, lr=0), ValueError, "lr"),
    (dict(epochs=1, lr=float("nan")), ValueError, "lr"),
    (dict(epochs=1, momentum=1.0), ValueError, "momentum"),
    (dict(epochs=1, momentum=-0.1), ValueError, "momentum"),
    (dict(epochs=1, shuffle="yes"), TypeError, "shuffle"),
    (dict(epochs=1, seed=-1), ValueError, "seed"),
])
def test_bad_hyperparameters(kwargs, exc, match):
    X, y = blobs(4, 0.1, seed=0)
    with pytest.raises(exc, match=match):
        train(_blob_net(), X, y, **kwargs)


def test_missing_epochs_is_an_error():
    X, y = blobs(4, 0.1, seed=0)
    with pytest.raises(TypeError, match="epochs"):
        train(_blob_net(), X, y)


@pytest.mark.parametrize("X, y, exc, match", [
    (np.zeros((4, 36)), [0, 1, 0, 1], ValueError, "X must have shape"),
    (np.zeros((1, 6, 6)), [0], ValueError, "X must be a batch"),
    (np.full((4, 1, 6, 6), np.nan), [0, 1, 0, 1], ValueError, "X contains NaN"),
    (np.array([["a"] * 36] * 4).reshape(4, 1, 6, 6), [0, 1, 0, 1], TypeError, "X"),
    (np.zeros((4, 1, 6, 6)), [0, 1, 0], ValueError, r"y must have shape \(4,\)"),
    (np.zeros((4, 1, 6, 6)), [[0, 1, 0, 1]], ValueError, "y must have shape"),
    (np.zeros((4, 1, 6, 6)), [0, 1, 0, 2], ValueError, r"out of range.*\[0, 1\]"),
    (np.zeros((4, 1, 6, 6)), [0, 1, 0, -1], ValueError, "out of range"),
    (np.zeros((4, 1, 6, 6)), [0, 1, 0, np.nan], ValueError, "y contains NaN"),
    (np.zeros((4, 1, 6, 6)), [0, 1, 0, 0.5], ValueError, "integral"),
    (np.zeros((4, 1, 6, 6)), ["a", "b", "a", "b"], TypeError, "y must hold integer"),
    (np.zeros((4, 1, 6, 6)), "0101", TypeError, "y must be an array"),
])
def test_bad_data(X, y, exc, match):
    with pytest.raises(exc, match=match):
        train(_blob_net(), X, y, epochs=1)


def test_integral_float_labels_are_accepted():
    X, y = blobs(8, 0.1, seed=0)
    train(_blob_net(), X, y.astype(float), epochs=1)


def test_bad_network():
    X, y = blobs(4, 0.1, seed=0)
    with pytest.raises(TypeError, match="net must be a lrpfast Network"):
        train("net", X, y, epochs=1)
    one = Network((1, 6, 6), [Dense(1)], seed=0)
    with pytest.raises(ValueError, match="at least 2 outputs"):
        train(one, X, np.zeros(4, int), epochs=1)


@pytest.mark.parametrize("layers", [
    lambda: [Dense(4, "relu"), Dense(3), SoftMax()],
    lambda: [Dense(4, "relu"), Dense(3)],
    lambda: [Dense(4, "relu"), Dense(3), SoftMax(), Dropout(0.5), Identity()],
    lambda: [Dense(4, "relu"), SoftMax(), Dense(3)],
    lambda: [Dense(3), SoftMax(), LayerNorm()],
])
def test_logits_are_the_ones_lrp_seeds_from(layers):
    from lrpfast.explain import _logit_layer
    from lrpfast.train import _logit_index

    net = Network((5,), layers(), dtype="float64", seed=0)
    assert _logit_index(net) == _logit_layer(net.layers)


def test_trailing_softmax_then_dropout_trains_on_logits():
    net = Network((1, 6, 6), [Dense(8, "relu"), Dense(2), SoftMax(), Dropout(0.5)],
                  dtype="float64", seed=0)
    X, y = blobs(6, 0.1, seed=0)
    A = X.reshape(6, -1).astype(np.float64)
    # Dropout after the SoftMax takes no part: the loss is deterministic.
    assert _loss(net, A, y, 1) == _loss(net, A, y, 2) == _loss(net, A, y, None)
