"""What every importer shares: imports, dtype and shape resolution, refusal
messages, and :class:`Chain`, which turns a chain of source layers into a
:class:`~lrpfast.network.Network`.

The rules of a chain are written once, here: a dense layer takes a flat
vector of its input size, a softmax runs over all features of a flat vector,
a LayerNorm normalises over all features, a reshape keeps the number of
values.  Each importer only translates its framework's layers into these
calls, naming the source layer (``where``) for the messages.
"""

from __future__ import annotations

import importlib
import math

import numpy as np

from .. import layers as L
from .._validation import check_dtype
from ..network import Network, _check_shape

_INSTALL = {
    "sklearn": 'pip install scikit-learn  (or: pip install "lrpfast[sklearn]")',
    "torch": 'pip install torch==2.13.0  (the CPU build; or: pip install "lrpfast[torch]")',
    "onnx": 'pip install onnx  (or: pip install "lrpfast[onnx]")',
    "keras": 'pip install keras  (or: pip install "lrpfast[keras]"), plus a backend '
             "such as torch, selected with KERAS_BACKEND=torch",
}


def require(module, what):
    """Import ``module`` or raise an ImportError that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        raise ImportError(
            f"{what} needs the '{top}' package, which is not installed or does not "
            f"import ({exc}); install it with: {_INSTALL[top]}") from None


def resolve_dtype(dtype, source_dtype):
    """The user's dtype, else the source's float dtype (float64 stays float64)."""
    if dtype is not None:
        return check_dtype(dtype)
    return np.dtype(np.float64) if np.dtype(source_dtype) == np.float64 \
        else np.dtype(np.float32)


def resolve_input_shape(input_shape, n_in, where):
    """``input_shape`` checked against the ``n_in`` features the model takes."""
    if input_shape is None:
        return (n_in,)
    shape = _check_shape(input_shape)
    if math.prod(shape) != n_in:
        raise ValueError(
            f"input_shape {shape} holds {math.prod(shape)} values but {where} "
            f"takes {n_in} features")
    return shape


def check_size(input_shape, known, where):
    """``input_shape`` (or the model's ``known`` probe shape when None), with a
    size equal to ``known``'s when both are given."""
    if input_shape is None:
        if known is None or None in known:
            raise ValueError(
                f"input_shape is needed: the input shape of {where} is not known "
                f"({known})")
        return _check_shape(tuple(known))
    shape = _check_shape(input_shape)
    if known is not None and None not in known and math.prod(known) != math.prod(shape):
        raise ValueError(
            f"input_shape {shape} holds {math.prod(shape)} values but {where} "
            f"takes shape {tuple(known)} ({math.prod(known)} values)")
    return shape


def unsupported(where, fn, accepted):
    """The ValueError for a layer, node or step an importer does not take."""
    return ValueError(f"{where} is not supported; {fn} takes {accepted}")


class Chain:
    """lrpfast layers for a chain of source layers, checked as they come.

    Parameters
    ----------
    shape : tuple of int
        The per-probe shape the source's first layer receives.
    note : str
        Appended to shape errors (e.g. which ``input_shape`` was used).
    """

    def __init__(self, shape, note=""):
        self.shape = tuple(shape)
        self.note = note
        self.layers = []
        self._fill = []
        self.open_dense = None   # params of the last layer if it is a Dense

    def _add(self, layer, params=None):
        self.layers.append(layer)
        if params is not None:
            self._fill.append((layer, params))
        self.open_dense = params if isinstance(layer, L.Dense) else None
        return layer

    def need_flat(self, where):
        if len(self.shape) != 1:
            raise ValueError(
                f"{where} receives shape {self.shape}; lrpfast takes it only on a "
                f"flat vector (flatten before it){self.note}")

    # -- layers ---------------------------------------------------------------
    def dense(self, W, b, where, name, activation="linear"):
        """``z = a @ W + b`` with ``W`` of shape (n_in, n_out); ``b`` None is 0."""
        W = np.asarray(W, dtype=np.float64)
        if W.ndim != 2:
            raise ValueError(f"{where} has weights of shape {W.shape}, not a matrix")
        n_in, n_out = W.shape
        self.need_flat(where)
        if self.shape[0] != n_in:
            raise ValueError(
                f"{where} takes {n_in} features but receives shape {self.shape}"
                f"{self.note}")
        b = np.zeros(n_out) if b is None else self.broadcast(b, (n_out,), where, "bias")
        self._add(L.Dense(n_out, activation=activation, name=name),
                  {"weight": W, "bias": b})
        self.shape = (n_out,)

    def add_bias(self, b, where):
        """Add ``b`` to the bias of the Dense layer just made (ONNX MatMul + Add)."""
        if self.open_dense is None:
            raise ValueError(f"{where} is supported only as the bias of the dense "
                             "layer (MatMul or Gemm) right before it")
        params = self.open_dense
        params["bias"] = params["bias"] + self.broadcast(b, self.shape, where, "bias")
        self.open_dense = None

    def activation(self, act, where, name):
        """An element-wise activation of :data:`lrpfast.layers.ACTIVATIONS`."""
        cls = {"relu": L.ReLU, "tanh": L.Tanh, "sigmoid": L.Sigmoid}.get(act)
        self._add(cls(name=name) if cls else L.Activation(act, name=name))

    def softmax(self, axis, where, name, argname="axis"):
        """Softmax over ``axis`` of ``(B, *shape)``; only all features of a flat vector."""
        self.need_flat(where)
        if axis not in (None, 1, -1):
            raise ValueError(
                f"{where} has {argname}={axis} on shape {self.shape}; lrpfast takes a "
                f"softmax over all features of a flat vector ({argname}=1 or -1)")
        self._add(L.SoftMax(name=name))

    def identity(self, name, rate=None):
        """Identity, or Dropout (identity at inference) when ``rate`` is given."""
        self._add(L.Identity(name=name) if rate is None else
                  L.Dropout(min(max(float(rate), 0.0), 0.999), name=name))

    def flatten(self, where, name, start=1, end=-1):
        """Flatten dims ``start..end`` of ``(B, *shape)``: all but the batch only."""
        nd = len(self.shape) + 1
        start, end = start % nd, end % nd
        if start == 0 and end >= 1:
            raise ValueError(f"{where} flattens the batch dimension")
        if len(self.shape) > 1 and (start != 1 or end != nd - 1):
            raise ValueError(
                f"{where} flattens dims {start}..{end} of (B, *{self.shape}); lrpfast "
                "takes only a flatten of all dims after the batch")
        self.shape = (math.prod(self.shape),)
        self._add(L.Flatten(name=name))

    def reshape(self, target, where, name):
        """Reshape each probe to ``target`` (one entry may be -1)."""
        n = math.prod(self.shape)
        target = [int(t) for t in target]
        known = math.prod(t for t in target if t != -1)
        if target.count(-1) > 1 or any(t == 0 or t < -1 for t in target) or \
                (-1 in target and (known == 0 or n % known)) or \
                (-1 not in target and known != n):
            raise ValueError(
                f"{where} reshapes each probe of shape {self.shape} ({n} values) to "
                f"{tuple(target)}; lrpfast takes only reshapes that keep the values")
        new = tuple(n // known if t == -1 else t for t in target)
        if len(new) == 1:
            self._add(L.Flatten(name=name))
        # A reshape to a multi-dim probe changes nothing in flat data.
        self.shape = new

    def layernorm(self, gain, bias, eps, over_all, where, name):
        """LayerNorm; ``over_all`` says the source normalises over all features."""
        if not over_all:
            raise ValueError(
                f"{where} normalises over part of shape {self.shape}; lrpfast takes "
                "only a LayerNorm over all features")
        n = math.prod(self.shape)
        g = np.ones(n) if gain is None else self.broadcast(gain, self.shape, where, "gain")
        b = np.zeros(n) if bias is None else self.broadcast(bias, self.shape, where, "bias")
        self._add(L.LayerNorm(eps=eps, name=name), {"weight": g, "bias": b})

    def affine(self, scale, shift, where, name):
        """Element-wise ``y = x * scale + shift`` (a scaler)."""
        s = self.broadcast(scale, self.shape, where, "scale")
        t = self.broadcast(shift, self.shape, where, "shift")
        self._add(L.Affine(name=name), {"scale": s, "shift": t})

    @staticmethod
    def broadcast(value, shape, where, what):
        """``value`` broadcast to ``shape`` and flattened (C order), float64."""
        v = np.asarray(value, dtype=np.float64)
        try:
            return np.broadcast_to(v.reshape(shape) if v.size == math.prod(shape)
                                   else v, shape).reshape(-1).copy()
        except ValueError:
            raise ValueError(f"{where} has a {what} of shape {v.shape}; lrpfast needs "
                             f"one value per feature of shape {shape}") from None

    # -- result ---------------------------------------------------------------
    def network(self, input_shape, dtype, label=""):
        """The Network over probes of ``input_shape``, parameters filled in."""
        layers = self.layers or [L.Identity(name="identity")]
        net = Network(input_shape, layers, dtype=dtype, seed=0)
        for layer, params in self._fill:
            try:
                layer._set_params(params)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{label}{': ' if label else ''}{exc}") from None
        return net
