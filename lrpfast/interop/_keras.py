"""Keras 3: Sequential and Functional models whose graph is a chain."""

from __future__ import annotations

import numpy as np

from ._chain import Chain, check_size, require, resolve_dtype, unsupported

_TAKEN = ("InputLayer, Dense, Activation, ReLU, Softmax, Dropout, Flatten, Reshape and "
          "LayerNormalization in a chain")
_ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "softmax")


def from_keras(model, input_shape=None, dtype=None):
    """A :class:`Network` computing a Keras 3 model (at inference).

    Parameters
    ----------
    model : keras.Sequential or keras.Model
        A built ``Sequential`` (nested Sequentials are walked in order) or a
        Functional model whose graph is a chain (one input, one output, every
        layer applied once to the output of the one before), of
        ``InputLayer``, ``Dense`` (activation ``linear``, ``relu``, ``tanh``,
        ``sigmoid`` or ``softmax``), ``Activation`` (the same), ``ReLU``
        (plain: no ``max_value``, ``negative_slope`` or ``threshold``),
        ``Softmax``, ``Dropout``, ``Flatten``, ``Reshape`` and
        ``LayerNormalization`` (over all features, without ``rms_scaling``).
        Keras needs a backend: any works (lrpfast reads the weights only),
        e.g. ``KERAS_BACKEND=torch``.
    input_shape : tuple of int or None
        Probe shape.  None reads it from the model's input (without the batch
        dimension), whatever its rank, e.g. ``(T, F)``.  A Sequential built
        without an ``Input`` needs it, as does a model whose input shape is
        not fully known.  Any shape with as many values works when the model's
        is known.
    dtype : {"float32", "float64"} or None
        None follows the model's weights (float64 stays float64, other float
        types become float32).

    Returns
    -------
    Network
        One lrpfast layer per Keras layer, in order, except: a ``Dense`` with a
        ``softmax`` activation becomes a linear ``Dense`` plus a ``SoftMax``
        (the logits seed the relevance), ``InputLayer`` vanishes, and a
        ``Reshape`` to a multi-dim probe only changes the bookkeeping shape.
        ``net.forward(X)`` equals ``model.predict(X)``.

    Raises
    ------
    ImportError
        keras is not installed.
    TypeError
        ``model`` is not a Keras model.
    ValueError
        A layer of another kind or with an option lrpfast cannot reproduce
        (named with its class and its index in ``model.layers``), a branch,
        or an unbuilt model.

    Notes
    -----
    Keras 3 promotes ``float64 x float64`` to float32 (as JAX does by
    default), so a float64 Keras model's ``Dense`` layers multiply in float32:
    its ``predict`` agrees with the float64 network to float32 precision only,
    and the network computes the float64 result of the same weights.
    """
    keras = require("keras", "from_keras")
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model (Sequential or Functional), got "
                        f"{type(model).__module__}.{type(model).__name__}")
    layers = _chain_layers(keras, model)
    weights = [w for layer in layers for w in layer.weights]
    dt = resolve_dtype(dtype, np.float64 if weights and str(weights[0].dtype) == "float64"
                       else np.float32)
    known = _known_shape(model)
    shape = check_size(input_shape, known, f"model {model.name!r}")
    chain = Chain(known if known is not None and None not in known else shape,
                  note=f" (input_shape {shape})")
    for where, layer in _numbered(model, layers):
        handler = _LAYERS.get(type(layer).__name__)
        if handler is None or type(layer) is not getattr(keras.layers, type(layer).__name__):
            raise unsupported(where, "from_keras", _TAKEN)
        handler(keras, chain, layer, where)
    return chain.network(shape, dt)


def _numbered(model, layers):
    index = {id(layer): k for k, layer in enumerate(model.layers)}
    for layer in layers:
        k = index.get(id(layer))
        pos = f"index {k}" if k is not None else "a nested model"
        yield f"{type(layer).__name__} at {pos} ({layer.name!r})", layer


def _known_shape(model):
    """The model's probe shape (None entries unknown), or None when not built."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return None
    if not inputs:
        return None
    return tuple(inputs[0].shape[1:])


def _chain_layers(keras, model):
    """The model's layers in order, checked to form a chain."""
    if isinstance(model, keras.Sequential):
        out = []
        for layer in model.layers:
            out += _chain_layers(keras, layer) if isinstance(layer, keras.Sequential) \
                else [layer]
        if not out:
            raise ValueError(f"model {model.name!r} is an empty Sequential")
        return out
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(f"model {model.name!r} has {len(model.inputs)} inputs and "
                         f"{len(model.outputs)} outputs; lrpfast takes one of each")
    prev = None
    for k, layer in enumerate(model.layers):
        where = f"{type(layer).__name__} at index {k} ({layer.name!r})"
        nodes = getattr(layer, "_inbound_nodes", [])
        parents = [p.operation for n in nodes for p in n.parent_nodes]
        if len(nodes) != 1 or (prev is None) != (not parents) or \
                (prev is not None and parents != [prev]):
            got = [p.name for p in parents] if len(nodes) == 1 else f"{len(nodes)} calls"
            raise ValueError(
                f"{where} is not a link of a chain: it reads {got}, while a chain link "
                f"reads only the layer before ({prev.name if prev else 'nothing'!r}); "
                "lrpfast takes no branches, merges (Add, Concatenate) or shared layers")
        prev = layer
    if model.outputs[0]._keras_history.operation is not prev:
        raise ValueError(f"model {model.name!r}: the output is not the last layer's")
    return [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]


def _array(keras, variable):
    return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float64)


def _activation_name(layer, where):
    name = getattr(layer.activation, "__name__", repr(layer.activation))
    if name not in _ACTIVATIONS:
        raise ValueError(f"{where} has activation {name!r}; lrpfast takes "
                         f"{', '.join(map(repr, _ACTIVATIONS))}")
    return name


# ---------------------------------------------------------------------------
# Layers: class name -> handler(keras, chain, layer, where) (exact classes only)
# ---------------------------------------------------------------------------

def _dense(keras, chain, layer, where):
    act = _activation_name(layer, where)
    if not layer.built:
        raise ValueError(f"{where} is not built; build the model (call it once or give "
                         "it an Input) first")
    b = _array(keras, layer.bias) if layer.bias is not None else None
    chain.dense(_array(keras, layer.kernel), b, where, layer.name,
                activation="linear" if act == "softmax" else act)
    if act == "softmax":     # the logits (the Dense output) seed the relevance
        chain.softmax(-1, where, f"{layer.name}_softmax")


def _activation(keras, chain, layer, where):
    act = _activation_name(layer, where)
    if act == "softmax":
        chain.softmax(-1, where, layer.name)
    elif act == "linear":
        chain.identity(layer.name)
    else:
        chain.activation(act, where, layer.name)


def _relu(keras, chain, layer, where):
    if layer.max_value is not None or float(layer.negative_slope) != 0.0 or \
            float(layer.threshold) != 0.0:
        raise ValueError(
            f"{where} has max_value={layer.max_value}, negative_slope="
            f"{float(layer.negative_slope):g}, threshold={float(layer.threshold):g}; "
            "lrpfast takes a plain ReLU (None, 0, 0)")
    chain.activation("relu", where, layer.name)


def _softmax(keras, chain, layer, where):
    axis = layer.axis[0] if isinstance(layer.axis, (list, tuple)) and \
        len(layer.axis) == 1 else layer.axis
    chain.softmax(axis if isinstance(axis, int) else repr(axis), where, layer.name)


def _flatten(keras, chain, layer, where):
    if layer.data_format == "channels_first" and len(chain.shape) > 1:
        raise ValueError(f"{where} has data_format='channels_first', which moves the "
                         "channels last before flattening; lrpfast takes channels_last")
    chain.flatten(where, layer.name)


def _layernorm(keras, chain, layer, where):
    if getattr(layer, "rms_scaling", False):
        raise ValueError(f"{where} has rms_scaling=True; lrpfast takes the plain "
                         "LayerNormalization")
    nd = len(chain.shape) + 1
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    over_all = sorted(a % nd for a in axes) == list(range(1, nd))
    g = _array(keras, layer.gamma) if layer.scale else None
    b = _array(keras, layer.beta) if layer.center else None
    chain.layernorm(g, b, layer.epsilon, over_all, where, layer.name)


_LAYERS = {
    "InputLayer": lambda keras, chain, layer, where: None,
    "Dense": _dense,
    "Activation": _activation,
    "ReLU": _relu,
    "Softmax": _softmax,
    "Dropout": lambda keras, chain, layer, where: chain.identity(layer.name,
                                                                 rate=layer.rate),
    "Flatten": _flatten,
    "Reshape": lambda keras, chain, layer, where: chain.reshape(layer.target_shape,
                                                                where, layer.name),
    "LayerNormalization": _layernorm,
}
