"""Layers of a dense network.

Every layer works on flat 2-D batches ``(B, n)`` (C-order flattening of the
probe shape); shapes are only a matter of bookkeeping.  Each layer says how LRP
treats it through its ``lrp`` class attribute:

``"dense"``
    has a redistribution rule (epsilon, gamma, alpha-beta);
``"passthru"``
    relevance passes unchanged (activations, Identity, Dropout, Flatten,
    Affine);
``"skip"``
    no LRP rule exists; relevance passes unchanged when the shape allows and
    the layer is reported as ``SKIPPED (no <rule> rule)`` (SoftMax, LayerNorm).
"""

from __future__ import annotations

import math

import numpy as np

from ._validation import as_float_array, check_choice, check_int, check_real

# Activation functions and their derivatives expressed through the output
# (as scikit-learn's ``_base.py`` does): f(z) and f'(z) = g(f(z)).
ACTIVATIONS = {
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, 0),
    "tanh": np.tanh,
    "sigmoid": lambda z: 0.5 * (1 + np.tanh(0.5 * z)),
}
DERIVATIVES = {
    "linear": lambda y: np.ones_like(y),
    "relu": lambda y: (y > 0).astype(y.dtype),
    "tanh": lambda y: 1 - y * y,
    "sigmoid": lambda y: y * (1 - y),
}
# Codes understood by the compiled kernels (``_kernels.pyx``).
ACT_CODES = {"linear": 0, "relu": 1, "tanh": 2, "sigmoid": 3}


class Layer:
    """Base class.  Subclasses set ``kind`` (name in model files) and ``lrp``."""

    kind = "layer"
    lrp = "skip"
    # Operation of the compiled single-probe walk (_kernels.OP_CODES), or None
    # when the kernels do not know the layer (explain then walks in Python).
    _op = None

    def __init__(self, name=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {name!r}")
        self.name = name or type(self).__name__
        self.input_shape = None
        self.output_shape = None
        self.dtype = None

    # -- building -------------------------------------------------------
    def _build(self, input_shape, dtype, rng):
        """Fix shapes and dtype, create parameters; return the output shape."""
        self.input_shape = tuple(input_shape)
        self.dtype = dtype
        self.output_shape = self._output_shape(self.input_shape)
        return self.output_shape

    def _output_shape(self, input_shape):
        return input_shape

    @property
    def n_in(self):
        return math.prod(self.input_shape)

    @property
    def n_out(self):
        return math.prod(self.output_shape)

    # -- computing ------------------------------------------------------
    def _forward(self, A):
        """Map a flat batch ``(B, n_in)`` to ``(B, n_out)``."""
        raise NotImplementedError

    # -- persistence ----------------------------------------------------
    def get_config(self):
        """JSON-able constructor arguments (without parameters)."""
        return {"name": self.name}

    def params(self):
        """Parameter arrays by name (empty for parameter-free layers)."""
        return {}

    def _param_shapes(self):
        """Shapes of the parameters by name, once the input shape is known."""
        return {}

    def _set_params(self, params):
        if params:
            raise ValueError(f"{self.name} has no parameters, got {sorted(params)}")

    def describe(self):
        return type(self).__name__

    def __setstate__(self, state):
        # Unpickling (a Dask worker receiving a network) restores the arrays
        # but not NumPy's read-only flag: set it again on every parameter.
        self.__dict__.update(state)
        for cls in type(self).__mro__:
            for attr in vars(cls).values():
                arr = state.get(getattr(attr, "attr", None)) if isinstance(attr, _Param) else None
                if isinstance(arr, np.ndarray):
                    arr = np.array(arr, order="C")
                    arr.setflags(write=False)
                    setattr(self, attr.attr, arr)

    def __repr__(self):
        cfg = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({cfg})"


class _Param:
    """Descriptor for a settable, validated parameter array.

    Getting returns a read-only view, so the only way to change a weight is to
    assign it; every assignment bumps ``layer._version`` so caches of derived
    weights (gamma's ``w'``, alpha-beta's ``w+``/``w-``) notice.
    """

    def __set_name__(self, owner, name):
        self.attr = "_" + name
        self.public = name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return getattr(obj, self.attr)

    def __set__(self, obj, value):
        shape = obj._param_shapes().get(self.public)
        if shape is None:
            raise ValueError(
                f"{obj.name}.{self.public} cannot be set before the layer is part "
                "of a Network (its input size is not known yet)"
            )
        arr = as_float_array(value, f"{obj.name}.{self.public}", obj.dtype,
                             shape=shape, copy=True)
        arr.setflags(write=False)
        setattr(obj, self.attr, arr)
        obj._version += 1


class Dense(Layer):
    """Fully connected layer ``z = a @ W + b`` followed by an activation.

    Parameters
    ----------
    units : int
        Number of output neurons.
    activation : {"linear", "relu", "tanh", "sigmoid"}, default "linear"
    name : str, optional

    Attributes
    ----------
    weight : ndarray of shape (n_in, n_out)
        ``weight[i, j]`` connects input ``i`` to output ``j``.  Read-only view;
        assign a new array to change it.
    bias : ndarray of shape (n_out,)
    """

    kind = "dense"
    lrp = "dense"
    _op = "dense"
    weight = _Param()
    bias = _Param()

    def __init__(self, units, activation="linear", name=None):
        super().__init__(name)
        self.units = check_int(units, "units", low=1)
        self.activation = check_choice(activation, "activation", tuple(ACTIVATIONS))
        self._weight = None
        self._bias = None
        self._version = 0

    def _output_shape(self, input_shape):
        return (self.units,)

    def _param_shapes(self):
        if self.input_shape is None:
            return {}
        return {"weight": (self.n_in, self.units), "bias": (self.units,)}

    def _build(self, input_shape, dtype, rng):
        out = super()._build(input_shape, dtype, rng)
        if rng is None:         # parameters come from a file (network.load)
            return out
        n_in, n_out = self.n_in, self.units
        # He initialisation for ReLU, Glorot for the others.
        if self.activation == "relu":
            std = math.sqrt(2.0 / n_in)
        else:
            std = math.sqrt(2.0 / (n_in + n_out))
        self.weight = rng.normal(0.0, std, size=(n_in, n_out))
        self.bias = np.zeros(n_out)
        return out

    def _pre_activation(self, A):
        return A @ self._weight + self._bias

    def _forward(self, A):
        return ACTIVATIONS[self.activation](self._pre_activation(A))

    def get_config(self):
        return {"units": self.units, "activation": self.activation, "name": self.name}

    def params(self):
        return {"weight": self._weight, "bias": self._bias}

    def _set_params(self, params):
        if set(params) != {"weight", "bias"}:
            raise ValueError(f"{self.name} needs weight and bias, got {sorted(params)}")
        self.weight = params["weight"]
        self.bias = params["bias"]

    def describe(self):
        return f"Dense({self.units}, {self.activation})"


class Activation(Layer):
    """Element-wise activation layer (relevance passes through)."""

    kind = "activation"
    lrp = "passthru"
    _op = "act"

    def __init__(self, activation="relu", name=None):
        self.activation = check_choice(activation, "activation", tuple(ACTIVATIONS))
        super().__init__(name)

    def _forward(self, A):
        return ACTIVATIONS[self.activation](A)

    def get_config(self):
        return {"activation": self.activation, "name": self.name}

    def describe(self):
        return f"Activation({self.activation})"


class ReLU(Activation):
    kind = "relu"

    def __init__(self, name=None):
        super().__init__("relu", name)

    def get_config(self):
        return {"name": self.name}

    def describe(self):
        return "ReLU"


class Tanh(ReLU):
    kind = "tanh"

    def __init__(self, name=None):
        Activation.__init__(self, "tanh", name)

    def describe(self):
        return "Tanh"


class Sigmoid(ReLU):
    kind = "sigmoid"

    def __init__(self, name=None):
        Activation.__init__(self, "sigmoid", name)

    def describe(self):
        return "Sigmoid"


class Identity(Layer):
    """Does nothing; relevance passes through."""

    kind = "identity"
    lrp = "passthru"
    _op = "alias"

    def _forward(self, A):
        return A


class Flatten(Identity):
    """Reshape to ``(n,)``.  Data is flat in C order already, so a no-op."""

    kind = "flatten"

    def _output_shape(self, input_shape):
        return (math.prod(input_shape),)


class Dropout(Identity):
    """Dropout: identity at inference (explain, forward); active in training."""

    kind = "dropout"

    def __init__(self, rate=0.5, name=None):
        super().__init__(name)
        self.rate = check_real(rate, "rate", low=0.0, high=1.0)
        if self.rate >= 1.0:
            raise ValueError(f"rate must be in [0, 1), got {rate!r}")

    def get_config(self):
        return {"rate": self.rate, "name": self.name}

    def describe(self):
        return f"Dropout({self.rate:g})"


class SoftMax(Layer):
    """Softmax over all features.  No LRP rule: reported as SKIPPED."""

    kind = "softmax"
    lrp = "skip"
    _op = "softmax"

    def _forward(self, A):
        e = np.exp(A - A.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


class LayerNorm(Layer):
    """Layer normalisation over all features, with gain and bias.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias``.  Forward only: LRP
    has no rule here, so the layer is reported as SKIPPED.
    """

    kind = "layernorm"
    lrp = "skip"
    _op = "layernorm"
    weight = _Param()
    bias = _Param()

    def __init__(self, eps=1e-5, name=None):
        super().__init__(name)
        self.eps = check_real(eps, "eps", low=0.0, low_inclusive=False)
        self._weight = None
        self._bias = None
        self._version = 0

    def _param_shapes(self):
        if self.input_shape is None:
            return {}
        return {"weight": (self.n_in,), "bias": (self.n_in,)}

    def _build(self, input_shape, dtype, rng):
        out = super()._build(input_shape, dtype, rng)
        if rng is None:
            return out
        self.weight = np.ones(self.n_in)
        self.bias = np.zeros(self.n_in)
        return out

    def _normalise(self, A):
        """``(xhat, 1/sigma)``: the normalised input and its scale (also for training)."""
        mu = A.mean(axis=1, keepdims=True)
        inv_sigma = 1.0 / np.sqrt(((A - mu) ** 2).mean(axis=1, keepdims=True) + self.eps)
        return (A - mu) * inv_sigma, inv_sigma

    def _forward(self, A):
        return self._normalise(A)[0] * self._weight + self._bias

    def get_config(self):
        return {"eps": self.eps, "name": self.name}

    def params(self):
        return {"weight": self._weight, "bias": self._bias}

    _set_params = Dense._set_params


class Affine(Layer):
    """Element-wise affine map ``y = x * scale + shift`` (a fitted scaler).

    scikit-learn's StandardScaler, MinMaxScaler, MaxAbsScaler and
    RobustScaler all compute this (:func:`lrpfast.from_sklearn` makes one from
    each).  Each output depends on its own input only, so relevance passes
    through unchanged (``lrp = "passthru"``): the relevance of a scaled
    feature lands at its raw feature's position.

    Parameters
    ----------
    scale, shift : float, array-like or None
        One value per input (any shape of ``n_in`` values, read in C order),
        or anything that broadcasts to the layer's input shape (a scalar, a
        per-channel ``(C, 1, 1)``); checked when the layer becomes part of a
        Network.  None gives ``scale = 1``, ``shift = 0``.
    name : str, optional

    Attributes
    ----------
    scale, shift : ndarray of shape (n_in,)
        Per input (C-order flat).  Read-only views; assign a new array to
        change them.  Training (:func:`lrpfast.train`) updates them like any
        other parameter.
    """

    kind = "affine"
    lrp = "passthru"
    _op = "affine"
    scale = _Param()
    shift = _Param()

    def __init__(self, scale=None, shift=None, name=None):
        super().__init__(name)
        self._init = {}
        for pname, value in (("scale", scale), ("shift", shift)):
            if value is not None:
                # Validated now (finite, real); shape-checked at build time.
                self._init[pname] = as_float_array(value, pname, np.float64, copy=True)
        self._scale = None
        self._shift = None
        self._version = 0

    def _param_shapes(self):
        if self.input_shape is None:
            return {}
        return {"scale": (self.n_in,), "shift": (self.n_in,)}

    def _build(self, input_shape, dtype, rng):
        out = super()._build(input_shape, dtype, rng)
        if rng is None:         # parameters come from a file (network.load)
            return out
        for pname, default in (("scale", 1.0), ("shift", 0.0)):
            value = np.asarray(self._init.get(pname, default))
            if value.size == self.n_in:     # one value per input, any layout
                value = value.reshape(-1)
            else:
                try:
                    value = np.broadcast_to(value, self.input_shape).reshape(-1)
                except ValueError:
                    raise ValueError(
                        f"{self.name}.{pname} has shape {value.shape}; it needs "
                        f"{self.n_in} values (one per input) or a shape that "
                        f"broadcasts to the input shape {self.input_shape}") from None
            setattr(self, pname, value)
        return out

    def _forward(self, A):
        return A * self._scale + self._shift

    def params(self):
        return {"scale": self._scale, "shift": self._shift}

    def _set_params(self, params):
        if set(params) != {"scale", "shift"}:
            raise ValueError(f"{self.name} needs scale and shift, got {sorted(params)}")
        self.scale = params["scale"]
        self.shift = params["shift"]


# Layer kinds by the name stored in model files.
LAYER_KINDS = {cls.kind: cls for cls in (
    Dense, Activation, ReLU, Tanh, Sigmoid, Identity, Flatten, Dropout,
    SoftMax, LayerNorm, Affine)}
