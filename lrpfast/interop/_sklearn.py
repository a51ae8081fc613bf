"""scikit-learn: an MLPClassifier/MLPRegressor, alone or at the end of a Pipeline
of scalers and linear projections."""

from __future__ import annotations

import functools

import numpy as np

from ._chain import Chain, require, resolve_dtype, resolve_input_shape, unsupported

_SK_ACTIVATIONS = {"identity": "linear", "relu": "relu", "tanh": "tanh",
                   "logistic": "sigmoid"}
_STEPS = ("StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler, PCA, "
          "TruncatedSVD or 'passthrough' before a final MLPClassifier or MLPRegressor")


def from_sklearn(model, dtype=None, input_shape=None):
    """A :class:`Network` computing a fitted scikit-learn MLP, or a Pipeline ending in one.

    Parameters
    ----------
    model : MLPClassifier, MLPRegressor or Pipeline
        Fitted, with activation ``"relu"``, ``"identity"``, ``"tanh"`` or
        ``"logistic"``.  A :class:`~sklearn.pipeline.Pipeline` may put any
        number of these steps before the MLP:

        - ``StandardScaler``, ``MinMaxScaler`` (without ``clip``),
          ``MaxAbsScaler``, ``RobustScaler``: each becomes one
          :class:`~lrpfast.Affine` layer ``y = x * scale + shift``, which
          passes relevance through, so the relevance of each scaled feature
          lands at its raw feature's position;
        - ``PCA`` (also with ``whiten=True``) and ``TruncatedSVD``: each
          becomes a linear :class:`~lrpfast.Dense` layer, which takes an LRP
          rule like any Dense layer (a per-layer rule list counts it);
        - ``"passthrough"`` (or None): nothing.
    dtype : {"float32", "float64"} or None
        None keeps the dtype of the MLP's ``coefs_`` (float64 unless the model
        was fitted on float32 data).
    input_shape : tuple of int or None
        Probe shape; None gives ``(n_features_in_,)`` of the raw features (the
        Pipeline's input).  Any shape with that many values works, e.g.
        ``(1, 8, 8)`` for the digits data; the features are the probe
        flattened in C order.

    Returns
    -------
    Network
        Outputs are what the model predicts:

        - multi-class classifier: ends in ``SoftMax``; ``net.forward(X)``
          equals ``model.predict_proba(X)`` and class ``k`` is
          ``model.classes_[k]``.
        - binary classifier: one logistic output, ending in ``Dense(1)`` and
          ``Sigmoid``; ``net.forward(X)[:, 0]`` equals
          ``model.predict_proba(X)[:, 1]``.  The explained class is always 0,
          the logit of ``model.classes_[1]`` (see :mod:`lrpfast.interop`).
        - multi-label classifier: one sigmoid output per label.
        - regressor: linear outputs equal to ``model.predict(X)`` (reshaped to
          ``(B, n_outputs)``); with several outputs ``forced_class`` picks the
          one to explain (default: the largest).

    Raises
    ------
    ImportError
        scikit-learn is not installed.
    TypeError
        ``model`` is not an MLP or a Pipeline.
    ValueError
        The model is not fitted, uses an unsupported activation, or a Pipeline
        step is not one of the above (named in the message).
    """
    nn = require("sklearn.neural_network", "from_sklearn")
    pipeline = require("sklearn.pipeline", "from_sklearn")
    if isinstance(model, pipeline.Pipeline):
        if not model.steps:
            raise ValueError("model is an empty Pipeline")
        *pre, (last_name, mlp) = model.steps
        where = f"the final step {last_name!r} of the Pipeline"
    else:
        pre, mlp, where = [], model, "model"
    if not isinstance(mlp, (nn.MLPClassifier, nn.MLPRegressor)):
        raise TypeError(
            f"{where} must be a scikit-learn MLPClassifier or MLPRegressor (or a "
            f"Pipeline ending in one), got {type(mlp).__name__}")
    hidden, out_act = _check_mlp(mlp)
    coefs = mlp.coefs_
    dt = resolve_dtype(dtype, coefs[0].dtype)
    n_raw = _n_raw_features(pre, coefs[0].shape[0])
    kind = type(model).__name__
    shape = resolve_input_shape(input_shape, n_raw, f"the {kind}")
    chain = Chain((n_raw,))
    for k, (name, step) in enumerate(pre):
        _add_step(chain, k, name, step)
    _add_mlp(chain, mlp, hidden, out_act)
    return chain.network(shape, dt)


def _check_mlp(mlp):
    """``(hidden activation, output activation)`` of a fitted MLP, checked."""
    kind = type(mlp).__name__
    if not hasattr(mlp, "coefs_"):
        raise ValueError(f"model: this {kind} is not fitted yet; call fit() first")
    hidden = _SK_ACTIVATIONS.get(mlp.activation)
    if hidden is None:
        raise ValueError(
            f"model: activation {mlp.activation!r} is not supported; lrpfast "
            f"takes {', '.join(map(repr, _SK_ACTIVATIONS))}")
    out_act = getattr(mlp, "out_activation_", None)
    if out_act not in ("softmax", "logistic", "identity"):
        raise ValueError(f"model: output activation {out_act!r} is not supported")
    return hidden, out_act


def _n_raw_features(pre, n_mlp):
    """Features the Pipeline takes: its first real step's ``n_features_in_``."""
    for name, step in pre:
        if step is not None and not isinstance(step, str):
            n = getattr(step, "n_features_in_", None)
            if n is None:
                raise ValueError(f"Pipeline step {name!r} ({type(step).__name__}) is "
                                 "not fitted yet; fit the Pipeline first")
            return int(n)
    return n_mlp


def _add_mlp(chain, mlp, hidden, out_act):
    n = len(mlp.coefs_)
    for k, (W, b) in enumerate(zip(mlp.coefs_, mlp.intercepts_)):
        # The output layer stays linear so that its output is the logit that
        # seeds the relevance; the squashing follows as its own layer.
        last = k == n - 1
        chain.dense(W, b, f"layer {k} of the MLP", "output" if last else f"hidden{k}",
                    activation="linear" if last else hidden)
    if out_act == "softmax":
        chain.softmax(-1, "softmax", "softmax")
    elif out_act == "logistic":
        chain.activation("sigmoid", "logistic", "logistic")


def _add_step(chain, k, name, step):
    """One preprocessing step of a Pipeline as an Affine or a linear Dense layer."""
    from sklearn import decomposition

    where = f"Pipeline step {k} {name!r} ({type(step).__name__})"
    if step is None or (isinstance(step, str) and step == "passthrough"):
        return
    if isinstance(step, str):
        raise unsupported(f"Pipeline step {k} {name!r} ({step!r})", "from_sklearn", _STEPS)
    cls = type(step)
    if not hasattr(step, "n_features_in_"):
        raise ValueError(f"{where} is not fitted yet; fit the Pipeline first")
    if cls in _scalers():
        scale, shift = _scalers()[cls](step, where)
        chain.affine(scale, shift, where, name)
    elif cls is decomposition.PCA:
        # y = (x - mean) @ V.T, whitened: / sqrt(explained_variance)
        W = step.components_.T
        if step.whiten:     # sklearn clips the scale at the machine epsilon
            scale = np.sqrt(step.explained_variance_)
            W = W / np.maximum(scale, np.finfo(scale.dtype).eps)
        chain.dense(W, -(step.mean_ @ W), where, name)
    elif cls is decomposition.TruncatedSVD:
        chain.dense(step.components_.T, None, where, name)     # y = x @ V.T
    else:
        raise unsupported(where, "from_sklearn", _STEPS)


def _standard(s, where):
    # y = (x - mean_) / scale_, each part only when switched on (mean_ is
    # fitted even with with_mean=False)
    scale = 1.0 / s.scale_ if s.with_std else 1.0
    mean = s.mean_ if s.with_mean else 0.0
    return scale, -np.asarray(mean) * scale


def _minmax(s, where):
    if s.clip:
        raise ValueError(f"{where} has clip=True, which is not an affine map; "
                         "lrpfast takes MinMaxScaler(clip=False)")
    return s.scale_, s.min_                      # y = x * scale_ + min_


def _maxabs(s, where):
    return 1.0 / s.scale_, 0.0                   # y = x / scale_


def _robust(s, where):
    # y = (x - center_) / scale_, each part only when switched on
    scale = 1.0 / s.scale_ if s.with_scaling else 1.0
    center = s.center_ if s.with_centering else 0.0
    return scale, -np.asarray(center) * scale


@functools.cache
def _scalers():
    """Scaler class -> maker of its ``(scale, shift)`` (sklearn imported on use)."""
    from sklearn import preprocessing as pp

    return {pp.StandardScaler: _standard, pp.MinMaxScaler: _minmax,
            pp.MaxAbsScaler: _maxabs, pp.RobustScaler: _robust}
