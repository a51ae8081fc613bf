"""from_keras: Keras 3 Sequential and Functional chains (backend: torch).

The forward is compared with ``model.predict``; the relevance with a lrpfast
network built by hand from ``layer.get_weights()``; every refusal names the
layer class and its index.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")   # before keras is imported

import numpy as np
import pytest

import lrpfast as lf
from _interop_common import close_forward, same_relevance, set_params

keras = pytest.importorskip("keras")
layers = keras.layers

# Keras 3 promotes float64 x float64 to float32 (JAX's default, "x64 off"):
# a float64 model's Dense layers multiply in float32.  Its float64 forward is
# then held to the float32 tolerance, the lrpfast one to exact float64 by the
# relevance comparison with a network built by hand.
KERAS_F64 = keras.backend.result_type("float64", "float64") == "float64"


def _close_predict(net, model, X, dtype):
    got, want = net.forward(X), model.predict(X, verbose=0)
    close_forward("keras", got, want, dtype if KERAS_F64 else "float32")


def _chain_model(dtype, seed=0, layernorm=True):
    """Every supported layer kind, in a Sequential over (4, 4) probes."""
    keras.utils.set_random_seed(seed)
    kw = dict(dtype=dtype)
    model = keras.Sequential([
        keras.Input((4, 4), dtype=dtype),
        layers.Flatten(**kw),
        layers.Dense(8, activation="tanh", **kw),
        layers.LayerNormalization(**kw) if layernorm else layers.Activation("linear", **kw),
        layers.Dropout(0.3, **kw),
        layers.Dense(6, **kw),
        layers.ReLU(**kw),
        layers.Reshape((2, 3), **kw),
        layers.Flatten(**kw),
        layers.Activation("sigmoid", **kw),
        layers.Dense(5, activation="relu", **kw),
        layers.Dense(3, activation="softmax", **kw),
    ])
    rng = np.random.default_rng(seed)
    for layer in model.layers:        # non-trivial biases, gains and shifts
        w = layer.get_weights()
        if w:
            layer.set_weights([v + rng.normal(scale=0.3, size=v.shape).astype(dtype)
                               for v in w])
    return model


def _by_hand(model, dtype, layernorm=True):
    """The same network written out with lrpfast layers and the model's weights."""
    w = [layer.get_weights() for layer in model.layers]
    net = lf.Network((4, 4), [
        lf.Flatten(), lf.Dense(8, "tanh"),
        lf.LayerNorm(eps=1e-3) if layernorm else lf.Identity(), lf.Dropout(0.3),
        lf.Dense(6), lf.ReLU(), lf.Flatten(), lf.Sigmoid(), lf.Dense(5, "relu"),
        lf.Dense(3), lf.SoftMax()], dtype=dtype, seed=0)
    return set_params(net, {
        1: dict(weight=w[1][0], bias=w[1][1]),
        **({2: dict(weight=w[2][0], bias=w[2][1])} if layernorm else {}),
        4: dict(weight=w[4][0], bias=w[4][1]), 8: dict(weight=w[9][0], bias=w[9][1]),
        9: dict(weight=w[10][0], bias=w[10][1])})


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sequential_chain(dtype):
    model = _chain_model(dtype, layernorm=False)
    net = lf.from_keras(model)
    assert net.dtype == np.dtype(dtype) and net.input_shape == (4, 4)
    assert [type(l).__name__ for l in net.layers] == [
        "Flatten", "Dense", "Identity", "Dropout", "Dense", "ReLU", "Flatten",
        "Sigmoid", "Dense", "Dense", "SoftMax"]
    X = np.random.default_rng(1).normal(size=(32, 4, 4)).astype(dtype)
    _close_predict(net, model, X, dtype)
    same_relevance(net, _by_hand(model, dtype, layernorm=False), list(X[:3]))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sequential_chain_with_layernorm(dtype):
    model = _chain_model(dtype)
    net = lf.from_keras(model)
    assert [type(l).__name__ for l in net.layers][2] == "LayerNorm"
    X = np.random.default_rng(1).normal(size=(32, 4, 4)).astype(dtype)
    _close_predict(net, model, X, dtype)
    # lrpfast's LayerNorm against the formula, from the same input
    h = net._trace(X.reshape(32, -1))[2].astype(np.float64)
    gamma, beta = model.layers[2].get_weights()
    exact = (h - h.mean(1, keepdims=True)) / np.sqrt(h.var(1, keepdims=True) + 1e-3)
    np.testing.assert_allclose(net._trace(X.reshape(32, -1))[3], exact * gamma + beta,
                               rtol=0, atol={"float32": 2e-6, "float64": 1e-12}[dtype])
    same_relevance(net, _by_hand(model, dtype), list(X[:3]))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_functional_chain_of_time_windows(dtype):
    keras.utils.set_random_seed(3)
    x = keras.Input((5, 3), dtype=dtype)           # (T, F): 5 time steps, 3 features
    h = layers.Flatten(dtype=dtype)(x)
    h = layers.Dense(7, dtype=dtype)(h)
    h = layers.Activation("tanh", dtype=dtype)(h)
    y = layers.Dense(2, dtype=dtype)(h)
    y = layers.Softmax(dtype=dtype)(y)
    model = keras.Model(x, y)
    net = lf.from_keras(model)
    assert net.input_shape == (5, 3) and net.dtype == np.dtype(dtype)
    X = np.random.default_rng(2).normal(size=(16, 5, 3)).astype(dtype)
    _close_predict(net, model, X, dtype)
    (W1, b1), (W2, b2) = model.layers[2].get_weights(), model.layers[4].get_weights()
    ref = set_params(lf.Network((5, 3), [lf.Flatten(), lf.Dense(7), lf.Tanh(),
                                         lf.Dense(2), lf.SoftMax()], dtype=dtype),
                     {1: dict(weight=W1, bias=b1), 3: dict(weight=W2, bias=b2)})
    same_relevance(net, ref, list(X[:2]))
    # Any shape with as many values; the dtype on request.
    other = lf.from_keras(model, input_shape=(15,), dtype="float64")
    assert other.input_shape == (15,) and other.dtype == np.float64


def test_nested_sequential_and_explicit_input_shape():
    keras.utils.set_random_seed(4)
    inner = keras.Sequential([layers.Dense(4, activation="relu"), layers.Dense(2)])
    model = keras.Sequential([layers.Dense(6, activation="sigmoid"), inner])
    with pytest.raises(ValueError, match="input_shape is needed"):
        lf.from_keras(model)              # never built: no input shape, no weights
    X = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    want = model.predict(X, verbose=0)    # builds it
    net = lf.from_keras(model)
    assert net.input_shape == (3,) and len(net.layers) == 3
    close_forward("keras", net.forward(X), want, "float32")


def _refuse(model, match, **kw):
    with pytest.raises(ValueError, match=match):
        lf.from_keras(model, **kw)


def test_refusals_name_the_layer_and_its_index():
    I = keras.Input
    _refuse(keras.Sequential([I((6, 6, 1)), layers.Conv2D(2, 3)]),
            r"Conv2D at index 0 \('conv2d.*'\) is not supported")
    _refuse(keras.Sequential([I((4,)), layers.Dense(3), layers.LeakyReLU()]),
            r"LeakyReLU at index 1")
    _refuse(keras.Sequential([I((4,)), layers.Dense(3, activation="gelu")]),
            r"Dense at index 0 .*'gelu'")
    _refuse(keras.Sequential([I((4,)), layers.ReLU(max_value=6.0)]),
            r"ReLU at index 0 .*max_value=6")
    _refuse(keras.Sequential([I((4, 4)), layers.Dense(3)]),
            r"Dense at index 0 .*shape \(4, 4\).*flat")
    _refuse(keras.Sequential([I((4, 4)), layers.LayerNormalization(axis=1)]),
            r"LayerNormalization at index 0 .*over all features")
    _refuse(keras.Sequential([I((4, 4)), layers.Softmax(axis=1)]),
            r"Softmax at index 0 .*flat")
    _refuse(keras.Sequential([I((4, 2)), layers.Flatten(data_format="channels_first")]),
            r"Flatten at index 0 .*channels_first")
    _refuse(keras.Sequential([I((4,)), layers.LayerNormalization(rms_scaling=True)]),
            r"LayerNormalization at index 0 .*rms_scaling")
    x = I((6,))
    h = layers.Dense(4, name="d1")(x)
    r = layers.ReLU(name="r1")(h)
    _refuse(keras.Model(x, layers.Add(name="skip")([h, r])),
            r"Add at index 3 \('skip'\) is not a link of a chain: it reads \['d1', 'r1'\]")
    shared = layers.Dense(6, name="shared")
    _refuse(keras.Model(x, shared(shared(x))), r"Dense at index 1 \('shared'\).*2 calls")
    a, b = I((3,)), I((3,))
    _refuse(keras.Model([a, b], layers.Concatenate()([a, b])), "2 inputs")
    with pytest.raises(TypeError, match="keras.Model"):
        lf.from_keras(layers.Dense(3))
    with pytest.raises(ValueError, match="input_shape"):
        lf.from_keras(keras.Sequential([I((4,)), layers.Dense(3)]), input_shape=(5,))


def test_missing_keras_says_how_to_install(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "keras", None)
    with pytest.raises(ImportError, match=r'lrpfast\[keras\]'):
        lf.from_keras(object())


def test_layer_variants():
    """Dense without bias, a -1 Reshape, LayerNormalization without gain or
    shift, a softmax Activation, an explicit Dense activation='linear'."""
    keras.utils.set_random_seed(5)
    model = keras.Sequential([
        keras.Input((2, 6)), layers.Reshape((-1,)),
        layers.Dense(5, use_bias=False, activation="sigmoid"),
        layers.LayerNormalization(center=False, scale=False, epsilon=1e-2),
        layers.Dense(4, activation="linear"), layers.Activation("softmax")])
    net = lf.from_keras(model)
    assert [type(l).__name__ for l in net.layers] == [
        "Flatten", "Dense", "LayerNorm", "Dense", "SoftMax"]
    X = np.random.default_rng(5).normal(size=(9, 2, 6)).astype("float32")
    _close_predict(net, model, X, "float32")
    W1 = model.layers[1].get_weights()[0]
    W2, b2 = model.layers[3].get_weights()
    ref = set_params(lf.Network((2, 6), [lf.Flatten(), lf.Dense(5, "sigmoid"),
                                         lf.LayerNorm(eps=1e-2), lf.Dense(4), lf.SoftMax()]),
                     {1: dict(weight=W1, bias=np.zeros(5)), 3: dict(weight=W2, bias=b2)})
    same_relevance(net, ref, list(X[:2]))
