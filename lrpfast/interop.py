"""Bring your own model: networks from scikit-learn, PyTorch and ONNX.

Each converter copies the source's weights into a :class:`~lrpfast.network.Network`
that computes exactly what the source computes (in inference mode), so
:func:`lrpfast.explain` explains the source model itself.  The source is
never modified.  The frameworks are imported inside the functions: lrpfast
itself needs none of them (install one with ``pip install lrpfast[sklearn]``,
``lrpfast[torch]`` or ``lrpfast[onnx]``).

Layer mapping
-------------
scikit-learn has no separate activation modules, so each of its layers
becomes one ``Dense(units, activation)``.  For PyTorch and ONNX every module
or operator becomes one lrpfast layer of its own (``Linear`` -> ``Dense``
with a linear activation, then ``ReLU``/``Tanh``/``Sigmoid`` layers), so
``net.layers[k]`` and the boundaries of a report line up with the source's
modules.  Folding the activation into the Dense layer would not change any
explanation: LRP passes relevance through activations unchanged either way.

Classes and logits
------------------
The explained class is ``argmax(output)`` (or ``forced_class``) and the
relevance is seeded with that class's logit: the input of a trailing SoftMax,
or of a trailing Sigmoid (the log-odds), or the output itself otherwise.  For
a binary :class:`~sklearn.neural_network.MLPClassifier` (and any model ending
in a single sigmoid unit) there is one output, so the explained "class" is
always ``0``: the logit ``z = log(p / (1 - p))`` of the *positive* class
``model.classes_[1]``.  Positive relevance speaks for ``classes_[1]``,
negative relevance for ``classes_[0]``; every LRP rule is linear in the seed,
so the explanation of ``classes_[0]`` (logit ``-z``) is the negated relevance.
"""

from __future__ import annotations

import math
import numbers
import os

import numpy as np

from . import layers as L
from ._validation import check_dtype
from .network import Network, _check_shape

__all__ = ["from_sklearn", "from_torch", "from_onnx"]

_INSTALL = {
    "sklearn": "pip install scikit-learn  (or: pip install lrpfast[sklearn])",
    "torch": "pip install torch==2.13.0  (the CPU build; or: pip install lrpfast[torch])",
    "onnx": "pip install onnx  (or: pip install lrpfast[onnx])",
}


def _require(module, what):
    """Import ``module`` or raise an ImportError that says how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{what} needs the '{module.split('.')[0]}' package, which is not "
            f"installed ({exc}); install it with: {_INSTALL[module.split('.')[0]]}"
        ) from None


def _resolve_dtype(dtype, source_dtype):
    """The user's dtype, else the source's float dtype (float64 stays float64)."""
    if dtype is not None:
        return check_dtype(dtype)
    source_dtype = np.dtype(source_dtype)
    return np.dtype(np.float64) if source_dtype == np.float64 else np.dtype(np.float32)


def _resolve_input_shape(input_shape, n_in, where):
    """``input_shape`` checked against the ``n_in`` features the model takes."""
    if input_shape is None:
        return (n_in,)
    shape = _check_shape(input_shape)
    if math.prod(shape) != n_in:
        raise ValueError(
            f"input_shape {shape} holds {math.prod(shape)} values but {where} "
            f"takes {n_in} features")
    return shape


# ---------------------------------------------------------------------------
# scikit-learn
# ---------------------------------------------------------------------------

_SK_ACTIVATIONS = {"identity": "linear", "relu": "relu", "tanh": "tanh",
                   "logistic": "sigmoid"}


def from_sklearn(model, dtype=None, input_shape=None):
    """A :class:`Network` computing a fitted scikit-learn MLP.

    Parameters
    ----------
    model : MLPClassifier or MLPRegressor
        Fitted, with activation ``"relu"``, ``"identity"``, ``"tanh"`` or
        ``"logistic"``.
    dtype : {"float32", "float64"} or None
        None keeps the dtype of ``model.coefs_`` (float64 unless the model was
        fitted on float32 data).
    input_shape : tuple of int or None
        Probe shape; None gives ``(n_features_in_,)``.  ``(C, H, W)`` (for
        example ``(1, 8, 8)`` for the digits data) gives image heatmaps; the
        features are the probe flattened in C order.

    Returns
    -------
    Network
        Outputs are what the model predicts:

        - multi-class classifier: ``Dense`` layers ending in ``SoftMax``;
          ``net.forward(X)`` equals ``model.predict_proba(X)`` and class ``k``
          is ``model.classes_[k]``.
        - binary classifier: one logistic output, ending in ``Dense(1)`` and
          ``Sigmoid``; ``net.forward(X)[:, 0]`` equals
          ``model.predict_proba(X)[:, 1]``.  The explained class is always 0,
          the logit of ``model.classes_[1]`` (see the module docstring).
        - multi-label classifier: one sigmoid output per label.
        - regressor: linear outputs equal to ``model.predict(X)`` (reshaped to
          ``(B, n_outputs)``); with several outputs ``forced_class`` picks the
          one to explain (default: the largest).

    Raises
    ------
    ImportError
        scikit-learn is not installed.
    TypeError
        ``model`` is not an MLPClassifier or MLPRegressor.
    ValueError
        The model is not fitted or uses an unsupported activation.
    """
    nn = _require("sklearn.neural_network", "from_sklearn")
    if not isinstance(model, (nn.MLPClassifier, nn.MLPRegressor)):
        raise TypeError(
            "model must be a scikit-learn MLPClassifier or MLPRegressor, got "
            f"{type(model).__name__}")
    kind = type(model).__name__
    if not hasattr(model, "coefs_"):
        raise ValueError(f"model: this {kind} is not fitted yet; call fit() first")
    hidden = _SK_ACTIVATIONS.get(model.activation)
    if hidden is None:
        raise ValueError(
            f"model: activation {model.activation!r} is not supported; lrpfast "
            f"takes {', '.join(map(repr, _SK_ACTIVATIONS))}")
    out_act = getattr(model, "out_activation_", None)
    if out_act not in ("softmax", "logistic", "identity"):
        raise ValueError(f"model: output activation {out_act!r} is not supported")
    coefs, intercepts = model.coefs_, model.intercepts_
    dt = _resolve_dtype(dtype, coefs[0].dtype)
    shape = _resolve_input_shape(input_shape, coefs[0].shape[0], f"the {kind}")

    layers = [L.Dense(W.shape[1], activation=hidden, name=f"hidden{k}")
              for k, W in enumerate(coefs[:-1])]
    n_out = coefs[-1].shape[1]
    # The output layer stays linear so that its output is the logit that
    # seeds the relevance; the squashing follows as its own layer.
    layers.append(L.Dense(n_out, activation="linear", name="output"))
    if out_act == "softmax":
        layers.append(L.SoftMax(name="softmax"))
    elif out_act == "logistic":
        layers.append(L.Sigmoid(name="logistic"))
    net = Network(shape, layers, dtype=dt, seed=0)
    for layer, W, b in zip(net.dense_layers, coefs, intercepts):
        layer.weight = W
        layer.bias = b
    return net


# ---------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------

def _torch_leaves(torch, module, prefix=""):
    """``(position, module)`` of the leaves of nested Sequentials, in order.

    Walks ``_modules`` as ``Sequential.forward`` does: ``named_children()``
    would skip a module that appears twice (a shared ``ReLU``, say).
    """
    for name, child in module._modules.items():
        pos = f"{prefix}{name}"
        if child is None:
            raise ValueError(f"index {pos} holds None, not a module")
        if isinstance(child, torch.nn.Sequential):
            _check_plain_sequential(torch, child, pos)
            yield from _torch_leaves(torch, child, pos + ".")
        else:
            yield pos, child


def _check_plain_sequential(torch, module, where):
    if type(module).forward is not torch.nn.Sequential.forward:
        raise ValueError(
            f"{type(module).__name__} at index {where} overrides forward(); lrpfast "
            "reads only plain nn.Sequential containers")


def _torch_array(torch, tensor, where):
    """A NumPy copy of a parameter (float16/bfloat16 widened to float32)."""
    t = tensor.detach()
    if t.device.type == "meta":
        raise ValueError(f"{where} has no data (meta device); load its weights first")
    t = t.cpu()
    if t.dtype not in (torch.float32, torch.float64):
        t = t.to(torch.float32)
    return t.numpy().copy()


def from_torch(module, input_shape=None, dtype=None):
    """A :class:`Network` computing a PyTorch ``nn.Sequential`` (in eval mode).

    Parameters
    ----------
    module : torch.nn.Sequential
        Of ``Linear``, ``ReLU``, ``Tanh``, ``Sigmoid``, ``Identity``,
        ``Dropout``, ``Flatten``, ``Softmax`` and ``LayerNorm``; nested
        Sequentials are walked in order.  Dropout is read as at inference
        (identity), whatever ``module.training`` is; the module is not touched.
    input_shape : tuple of int or None
        Probe shape.  None gives ``(in_features,)`` of the first Linear.  A
        ``(C, H, W)`` shape makes image heatmaps possible: when the module
        flattens its input itself (an ``nn.Flatten`` before the first
        Linear), the network computes ``module(x)`` for ``x`` of shape
        ``(B, C, H, W)``; otherwise it computes ``module(x.reshape(B, -1))``.
    dtype : {"float32", "float64"} or None
        None keeps the parameters' dtype (float16/bfloat16 become float32).

    Returns
    -------
    Network
        One lrpfast layer per torch module, in order (``Linear`` becomes
        ``Dense(out_features)`` with a linear activation and its weight
        transposed to ``(in_features, out_features)``).

    Raises
    ------
    ImportError
        torch is not installed.
    TypeError
        ``module`` is not an ``nn.Sequential``.
    ValueError
        A module of another kind, or one that lrpfast cannot reproduce
        exactly, with its position (e.g. ``Conv2d at index 0``).
    """
    torch = _require("torch", "from_torch")
    nn = torch.nn
    if not isinstance(module, nn.Sequential):
        raise TypeError(
            "module must be a torch.nn.Sequential, got "
            f"{type(module).__module__}.{type(module).__name__}")
    _check_plain_sequential(torch, module, "top level")
    leaves = list(_torch_leaves(torch, module))
    if not leaves:
        raise ValueError("module is an empty nn.Sequential")

    supported = (nn.Linear, nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Identity, nn.Dropout,
                 nn.Flatten, nn.Softmax, nn.LayerNorm)
    for pos, m in leaves:
        # Exact types: a subclass may compute something else in forward().
        if type(m) not in supported:
            raise ValueError(
                f"{type(m).__name__} at index {pos} is not supported; from_torch "
                "takes Linear, ReLU, Tanh, Sigmoid, Identity, Dropout, Flatten, "
                "Softmax and LayerNorm")

    linears = [(pos, m) for pos, m in leaves if isinstance(m, nn.Linear)]
    params = [p for p in module.parameters() if p.is_floating_point()]
    source_dtype = np.float32
    if params:
        source_dtype = np.float64 if params[0].dtype == torch.float64 else np.float32
    dt = _resolve_dtype(dtype, source_dtype)

    if input_shape is None:
        if not linears:
            raise ValueError(
                "input_shape is needed: the module has no Linear layer to read "
                "the input size from")
        shape = (linears[0][1].in_features,)
    else:
        shape = _check_shape(input_shape)
    # What torch sees per probe: the probe itself when the module flattens it
    # before its first Linear, else the C-order flattened probe.
    first_flatten = next((i for i, (_, m) in enumerate(leaves)
                          if isinstance(m, nn.Flatten)), None)
    first_linear = next((i for i, (_, m) in enumerate(leaves)
                         if isinstance(m, nn.Linear)), len(leaves))
    tshape = shape if first_flatten is not None and first_flatten < first_linear \
        else (math.prod(shape),)

    out, fill = [], []
    for pos, m in leaves:
        where = f"{type(m).__name__} at index {pos}"
        name = f"{type(m).__name__.lower()}_{pos}"
        if isinstance(m, nn.Linear):
            if len(tshape) != 1 or tshape[0] != m.in_features:
                raise ValueError(
                    f"{where} takes {m.in_features} features but receives shape "
                    f"{tshape} (input_shape {shape})")
            W = _torch_array(torch, m.weight, where).T
            b = _torch_array(torch, m.bias, where) if m.bias is not None else \
                np.zeros(m.out_features)
            out.append(L.Dense(m.out_features, activation="linear", name=name))
            fill.append((out[-1], {"weight": W, "bias": b}))
            tshape = (m.out_features,)
        elif isinstance(m, nn.ReLU):
            out.append(L.ReLU(name=name))
        elif isinstance(m, nn.Tanh):
            out.append(L.Tanh(name=name))
        elif isinstance(m, nn.Sigmoid):
            out.append(L.Sigmoid(name=name))
        elif isinstance(m, nn.Identity):
            out.append(L.Identity(name=name))
        elif isinstance(m, nn.Dropout):
            if not 0.0 <= m.p < 1.0:
                raise ValueError(f"{where} has p={m.p}; lrpfast takes 0 <= p < 1")
            out.append(L.Dropout(m.p, name=name))
        elif isinstance(m, nn.Flatten):
            nd = len(tshape) + 1  # with the batch dimension
            start = m.start_dim % nd
            end = m.end_dim % nd
            if len(tshape) > 1 and (start != 1 or end != nd - 1):
                raise ValueError(
                    f"{where} flattens dims {m.start_dim}..{m.end_dim} of "
                    f"(B, *{tshape}); lrpfast takes only Flatten(start_dim=1, "
                    "end_dim=-1)")
            if len(tshape) == 1 and start == 0 and end >= 1:
                raise ValueError(f"{where} flattens the batch dimension")
            tshape = (math.prod(tshape),)
            out.append(L.Flatten(name=name))
        elif isinstance(m, nn.Softmax):
            if len(tshape) != 1 or m.dim not in (None, 1, -1):
                raise ValueError(
                    f"{where} with dim={m.dim} on shape {tshape}: lrpfast takes "
                    "a softmax over all features of a flat vector (dim=1 or -1)")
            out.append(L.SoftMax(name=name))
        elif isinstance(m, nn.LayerNorm):
            norm = tuple(m.normalized_shape)
            if norm != tuple(tshape) and norm != (math.prod(tshape),):
                raise ValueError(
                    f"{where} normalises over {norm} of shape {tshape}; lrpfast "
                    "takes only a LayerNorm over all features")
            n = math.prod(tshape)
            g = _torch_array(torch, m.weight, where).reshape(-1) if m.weight is not None \
                else np.ones(n)
            b = _torch_array(torch, m.bias, where).reshape(-1) if m.bias is not None \
                else np.zeros(n)
            out.append(L.LayerNorm(eps=m.eps, name=name))
            fill.append((out[-1], {"weight": g, "bias": b}))
    net = Network(shape, out, dtype=dt, seed=0)
    for layer, p in fill:
        layer._set_params(p)
    return net


# ---------------------------------------------------------------------------
# ONNX
# ---------------------------------------------------------------------------

_ONNX_OPS = ("Gemm", "MatMul", "Add", "Relu", "Tanh", "Sigmoid", "Softmax",
             "Flatten", "Reshape", "Identity", "Dropout", "LayerNormalization",
             "Constant")


def _load_onnx(onnx, path_or_model):
    if isinstance(path_or_model, onnx.ModelProto):
        return path_or_model, "model"
    if not isinstance(path_or_model, (str, os.PathLike)):
        raise TypeError(
            "path_or_model must be a path to an .onnx file or an onnx.ModelProto, "
            f"got {type(path_or_model).__name__}")
    path = os.fspath(path_or_model)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path_or_model: no such file: {path!r}")
    with open(path, "rb") as fh:
        head = fh.read(2)
    # Protobuf parsing is lenient (an empty file is an empty model), so the
    # graph is checked after loading too; zip archives (.npz, .pt) and
    # pickles are named here, and never unpickled.
    if head == b"PK" or head[:1] == b"\x80":
        raise ValueError(f"{path!r} is not an ONNX model (it looks like a zip "
                         "archive or a pickle)")
    try:
        model = onnx.load(path)
    except Exception as exc:  # DecodeError, ValueError, ...
        raise ValueError(f"{path!r} is not a readable ONNX model ({exc})") from None
    return model, repr(path)


def _attrs(onnx, node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _onnx_dims(value_info):
    """Shape of a graph input as a list of ints and None (symbolic)."""
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]


def from_onnx(path_or_model, dtype=None, input_shape=None):
    """A :class:`Network` computing a chain-shaped ONNX graph.

    Parameters
    ----------
    path_or_model : str, os.PathLike or onnx.ModelProto
        The ``.onnx`` file (protobuf; nothing in it is executed) or a loaded
        model.  Its graph must be a chain of ``Gemm`` (any ``transB``,
        ``transA=0``), ``MatMul`` (either optionally followed by an ``Add``
        of a constant bias), ``Relu``, ``Tanh``, ``Sigmoid``, ``Softmax``,
        ``Flatten``, ``Reshape``, ``Identity``, ``Dropout`` and
        ``LayerNormalization`` (over all features) nodes, plus ``Constant``
        nodes and initializers that feed them.  The first input dimension is
        the batch.
    dtype : {"float32", "float64"} or None
        None keeps the input's element type (float or double).
    input_shape : tuple of int or None
        Probe shape; None reads it from the graph input (without the batch
        dimension).  Needed when that shape is symbolic.

    Returns
    -------
    Network
        One lrpfast layer per operator (a MatMul and its bias Add become one
        ``Dense``; Reshape to a flat vector becomes ``Flatten``, other
        reshapes only change the bookkeeping shape; Constant nodes vanish).

    Raises
    ------
    ImportError
        onnx is not installed (onnxruntime is not needed).
    TypeError
        ``path_or_model`` is neither a path nor a ModelProto.
    ValueError
        The file is not an ONNX model, or the graph has an operator outside
        the list (named with its node), a branch, or a shape lrpfast cannot
        reproduce.
    """
    onnx = _require("onnx", "from_onnx")
    from onnx import numpy_helper

    model, label = _load_onnx(onnx, path_or_model)
    graph = model.graph
    if not graph.node or not graph.output:
        raise ValueError(f"{label} is not an ONNX model (no graph nodes or outputs)")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ValueError(f"{label} is not a valid ONNX model ({exc})") from None
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                 None)

    consts = {}
    for init in graph.initializer:
        try:
            consts[init.name] = numpy_helper.to_array(init)
        except Exception as exc:
            raise ValueError(f"{label}: cannot read initializer {init.name!r} "
                             f"({exc})") from None
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ValueError(
            f"{label}: lrpfast takes a graph with one input and one output, got "
            f"{len(inputs)} inputs and {len(graph.output)} outputs")
    x_info = inputs[0]
    elem = x_info.type.tensor_type.elem_type
    TP = onnx.TensorProto
    if elem not in (TP.FLOAT, TP.DOUBLE, TP.FLOAT16):
        raise ValueError(
            f"{label}: input {x_info.name!r} has element type "
            f"{TP.DataType.Name(elem)}; lrpfast takes float or double inputs")
    dt = _resolve_dtype(dtype, np.float64 if elem == TP.DOUBLE else np.float32)
    dims = _onnx_dims(x_info)
    if dims is not None and len(dims) < 2:
        raise ValueError(
            f"{label}: input {x_info.name!r} has rank {len(dims)}; lrpfast needs "
            "a batch dimension first")
    batch_dim = dims[0] if dims else None
    if input_shape is not None:
        shape = _check_shape(input_shape)
        if dims is not None and None not in dims[1:] and \
                math.prod(dims[1:]) != math.prod(shape):
            raise ValueError(
                f"input_shape {shape} holds {math.prod(shape)} values but the "
                f"graph input {x_info.name!r} has shape {dims}")
    else:
        if dims is None or None in dims[1:]:
            raise ValueError(
                f"{label}: the shape of input {x_info.name!r} is not fully known "
                f"({dims}); pass input_shape")
        shape = _check_shape(tuple(dims[1:]))
    # What the graph sees per probe: its declared shape; with symbolic sizes,
    # a flat vector for a (batch, n) input, else the probe itself.
    if dims is not None and None not in dims[1:]:
        tshape = tuple(dims[1:])
    elif dims is not None and len(dims) == 2:
        tshape = (math.prod(shape),)
    elif dims is None or (len(dims) - 1 == len(shape) and all(
            d is None or d == s for d, s in zip(dims[1:], shape))):
        tshape = shape
    else:
        raise ValueError(
            f"input_shape {shape} does not fit the graph input {x_info.name!r} "
            f"of shape {dims}")

    # Tensors read by some node or by the graph: a node's extra outputs
    # (Dropout's mask) must be unused for the graph to be a chain.
    consumed = {i for n in graph.node for i in n.input} | {g.name for g in graph.output}
    out, fill = [], []
    cur = x_info.name
    dense_open = None   # (layer, params) of a MatMul whose bias Add may follow
    for idx, node in enumerate(graph.node):
        op = node.op_type
        where = f"{op} node {node.name or '(unnamed)'!r} (index {idx})"
        if node.domain not in ("", "ai.onnx"):
            raise ValueError(f"{label}: unsupported operator {node.domain}.{op} "
                             f"at {where}")
        if op not in _ONNX_OPS:
            raise ValueError(
                f"{label}: unsupported ONNX operator {op!r} at {where}; lrpfast "
                f"takes {', '.join(_ONNX_OPS)}")
        a = _attrs(onnx, node)
        if op == "Constant":
            if "value" not in a:
                raise ValueError(f"{label}: {where} is not a tensor constant")
            consts[node.output[0]] = numpy_helper.to_array(a["value"])
            continue
        ins = [i for i in node.input if i]
        data = [i for i in ins if i not in consts]
        # The data tensor comes first, except in Add (bias + x is fine too).
        if data != [cur] or (ins[0] != cur and op != "Add"):
            raise ValueError(
                f"{label}: {where} does not continue the chain from "
                f"{cur!r} (inputs {list(node.input)}); lrpfast takes a single "
                "chain of operators applied to the input")
        extra = [consts[i] for i in ins if i != cur]
        if any(o and o in consumed for o in node.output[1:]):
            raise ValueError(f"{label}: {where} has a second output in use")
        nxt = node.output[0]

        def flat_only():
            if len(tshape) != 1:
                raise ValueError(
                    f"{label}: {where} receives shape {tshape}; lrpfast takes "
                    "it only on a flat vector (add a Flatten before it)")

        if op in ("Gemm", "MatMul"):
            flat_only()
            if op == "Gemm":
                if a.get("transA", 0):
                    raise ValueError(f"{label}: {where} has transA=1")
                B = np.asarray(extra[0], dtype=np.float64)
                W = B.T if a.get("transB", 0) else B
                W = W * a.get("alpha", 1.0)
                n_out = W.shape[1] if W.ndim == 2 else -1
                bias = np.zeros(n_out)
                if len(extra) > 1:
                    bias = _bias(extra[1], n_out, where, label) * a.get("beta", 1.0)
            else:
                W = np.asarray(extra[0], dtype=np.float64)
                n_out = W.shape[1] if W.ndim == 2 else -1
                bias = np.zeros(n_out)
            if W.ndim != 2 or W.shape[0] != tshape[0]:
                raise ValueError(
                    f"{label}: {where} has weights of shape {np.shape(extra[0])} "
                    f"for an input of shape {tshape}")
            layer = L.Dense(n_out, activation="linear", name=node.name or f"{op}_{idx}")
            params = {"weight": W, "bias": bias}
            out.append(layer)
            fill.append((layer, params))
            dense_open = (layer, params)
            tshape = (n_out,)
            cur = nxt
            continue
        if op == "Add":
            if dense_open is None or len(extra) != 1:
                raise ValueError(
                    f"{label}: {where} is supported only as the bias of the "
                    "MatMul or Gemm right before it")
            params = dense_open[1]
            params["bias"] = params["bias"] + _bias(extra[0], tshape[0], where, label)
            dense_open = None
            cur = nxt
            continue
        dense_open = None
        name = node.name or f"{op}_{idx}"
        if op == "Relu":
            out.append(L.ReLU(name=name))
        elif op == "Tanh":
            out.append(L.Tanh(name=name))
        elif op == "Sigmoid":
            out.append(L.Sigmoid(name=name))
        elif op == "Identity":
            out.append(L.Identity(name=name))
        elif op == "Dropout":
            ratio = a.get("ratio", 0.5)
            if len(ins) > 1 and node.input[1]:
                ratio = float(np.asarray(consts[node.input[1]]))
            if len(node.input) > 2 and node.input[2] and \
                    bool(np.asarray(consts[node.input[2]])):
                raise ValueError(f"{label}: {where} runs in training mode")
            # The ratio plays no part at inference; clip it into lrpfast's range.
            out.append(L.Dropout(min(max(ratio, 0.0), 0.999), name=name))
        elif op == "Softmax":
            axis = a.get("axis", 1 if opset is not None and opset < 13 else -1)
            flat_only()
            if axis not in (1, -1):
                raise ValueError(f"{label}: {where} has axis={axis}; lrpfast "
                                 "takes a softmax over the features (axis 1 or -1)")
            out.append(L.SoftMax(name=name))
        elif op == "Flatten":
            axis = a.get("axis", 1)
            if axis % (len(tshape) + 1) != 1:
                raise ValueError(f"{label}: {where} has axis={axis}; lrpfast "
                                 "takes only Flatten(axis=1)")
            tshape = (math.prod(tshape),)
            out.append(L.Flatten(name=name))
        elif op == "Reshape":
            new = _reshape(consts[node.input[1]], a.get("allowzero", 0), tshape,
                           batch_dim, where, label)
            if len(new) == 1 and len(tshape) != 1:
                out.append(L.Flatten(name=name))
            elif len(new) == 1:
                out.append(L.Identity(name=name))
            # A reshape to a multi-dim probe changes nothing in flat data.
            tshape = new
        elif op == "LayerNormalization":
            nd = len(tshape) + 1
            axis = a.get("axis", -1) % nd
            if axis != 1 and not (len(tshape) == 1 and axis == nd - 1):
                raise ValueError(f"{label}: {where} normalises from axis "
                                 f"{a.get('axis', -1)}; lrpfast takes only a "
                                 "LayerNorm over all features")
            n = math.prod(tshape)
            g = np.asarray(extra[0], dtype=np.float64)
            bvec = np.asarray(extra[1], dtype=np.float64) if len(extra) > 1 \
                else np.zeros(n)
            g = np.broadcast_to(g, tshape).reshape(-1)
            bvec = np.broadcast_to(bvec, tshape).reshape(-1)
            layer = L.LayerNorm(eps=a.get("epsilon", 1e-5), name=name)
            out.append(layer)
            fill.append((layer, {"weight": g, "bias": bvec}))
        cur = nxt
    if graph.output[0].name != cur:
        raise ValueError(
            f"{label}: the graph output {graph.output[0].name!r} is not the end "
            f"of the operator chain ({cur!r})")
    if not out:
        out.append(L.Identity(name="identity"))
    net = Network(shape, out, dtype=dt, seed=0)
    for layer, p in fill:
        try:
            layer._set_params(p)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{label}: {exc}") from None
    return net


def _bias(c, n_out, where, label):
    """A Gemm/Add bias broadcast to ``(n_out,)`` (scalar, (n,), (1, n))."""
    c = np.asarray(c, dtype=np.float64)
    if c.size not in (1, n_out) or (c.ndim == 2 and c.shape[0] != 1) or c.ndim > 2:
        raise ValueError(f"{label}: {where} has a bias of shape {c.shape}; "
                         f"lrpfast takes one value per output ({n_out})")
    return np.broadcast_to(c.reshape(-1), (n_out,)).copy()


def _reshape(target, allowzero, tshape, batch_dim, where, label):
    """The per-probe shape after an ONNX Reshape of ``(B, *tshape)``."""
    t = [int(v) for v in np.asarray(target).reshape(-1)]
    n = math.prod(tshape)
    full = [batch_dim] + list(tshape)
    if allowzero and 0 in t:
        raise ValueError(f"{label}: {where} makes an empty tensor")
    if not t:
        raise ValueError(f"{label}: {where} drops the batch dimension")
    # 0 copies the input dimension at that position.
    t = [full[i] if v == 0 and i < len(full) else v for i, v in enumerate(t)]
    head, rest = t[0], t[1:]

    def bad():
        return ValueError(
            f"{label}: {where} reshapes (batch, *{tshape}) to {t}; lrpfast takes "
            "only reshapes that keep the batch dimension first")

    if head is None:  # copied symbolic batch
        pass
    elif head == -1:
        if -1 in rest or any(v is None for v in rest) or math.prod(rest) != n:
            raise bad()
        return tuple(rest) if rest else (1,)
    elif not (isinstance(head, numbers.Integral) and head == batch_dim):
        raise bad()
    if any(v is None or v == 0 or v < -1 for v in rest) or rest.count(-1) > 1:
        raise bad()
    if -1 in rest:
        known = math.prod(v for v in rest if v != -1)
        if known == 0 or n % known:
            raise bad()
        rest = [n // known if v == -1 else v for v in rest]
    if not rest or math.prod(rest) != n:
        raise bad()
    return tuple(rest)
