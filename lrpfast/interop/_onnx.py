"""ONNX: a chain-shaped graph, one small handler per operator type."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from ._chain import Chain, check_size, require, resolve_dtype


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
        dimension), whatever its rank.  Needed when that shape is symbolic.

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
    onnx = require("onnx", "from_onnx")
    model, label = _load(onnx, path_or_model)
    graph = model.graph
    consts = _initializers(onnx, graph, label)
    x_info = _single_input(onnx, graph, consts, label)
    elem = x_info.type.tensor_type.elem_type
    dt = resolve_dtype(dtype, np.float64 if elem == onnx.TensorProto.DOUBLE else np.float32)
    dims = _dims(x_info)
    if dims is not None and len(dims) < 2:
        raise ValueError(f"{label}: input {x_info.name!r} has rank {len(dims)}; lrpfast "
                         "needs a batch dimension first")
    shape, tshape = _shapes(dims, input_shape, x_info.name, label)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                 None)
    ctx = _Context(onnx, Chain(tshape), consts, opset, dims[0] if dims else None, label)
    cur = x_info.name
    consumed = {i for n in graph.node for i in n.input} | {g.name for g in graph.output}
    for idx, node in enumerate(graph.node):
        cur = _apply(ctx, idx, node, cur, consumed)
    if graph.output[0].name != cur:
        raise ValueError(f"{label}: the graph output {graph.output[0].name!r} is not the "
                         f"end of the operator chain ({cur!r})")
    return ctx.chain.network(shape, dt, label)


@dataclass
class _Context:
    onnx: object
    chain: Chain
    consts: dict
    opset: int | None
    batch_dim: object
    label: str


def _apply(ctx, idx, node, cur, consumed):
    """Check that ``node`` continues the chain from ``cur``, run its handler,
    and return the tensor the chain continues from."""
    op = node.op_type
    node_desc = f"{op} node {node.name or '(unnamed)'!r} (index {idx})"
    where = f"{ctx.label}: {node_desc}"
    if node.domain not in ("", "ai.onnx"):
        raise ValueError(f"{ctx.label}: unsupported operator {node.domain}.{op} at "
                         f"{node_desc}")
    if op not in _OPS:
        raise ValueError(f"{ctx.label}: unsupported ONNX operator {op!r} at {node_desc}; "
                         f"lrpfast takes {', '.join(_OPS)}")
    attrs = {a.name: ctx.onnx.helper.get_attribute_value(a) for a in node.attribute}
    if op == "Constant":
        _constant(ctx, node, attrs, where)
        return cur
    ins = [i for i in node.input if i]
    data = [i for i in ins if i not in ctx.consts]
    # The data tensor comes first, except in Add (bias + x is fine too).
    if data != [cur] or (ins[0] != cur and op != "Add"):
        raise ValueError(
            f"{where} does not continue the chain from {cur!r} (inputs "
            f"{list(node.input)}); lrpfast takes a single chain of operators applied "
            "to the input")
    if any(o and o in consumed for o in node.output[1:]):
        raise ValueError(f"{where} has a second output in use")
    extra = [ctx.consts[i] for i in ins if i != cur]
    if op != "Add":     # a bias Add follows its MatMul or Gemm directly
        ctx.chain.open_dense = None
    _OPS[op](ctx, node, attrs, extra, where, node.name or f"{op}_{idx}")
    return node.output[0]


# ---------------------------------------------------------------------------
# Operators: op type -> handler(ctx, node, attrs, constant inputs, where, name)
# ---------------------------------------------------------------------------

def _gemm(ctx, node, a, extra, where, name):
    if a.get("transA", 0):
        raise ValueError(f"{where} has transA=1; lrpfast takes transA=0")
    B = np.asarray(extra[0], dtype=np.float64)
    W = (B.T if a.get("transB", 0) else B) * a.get("alpha", 1.0)
    b = None
    if len(extra) > 1 and W.ndim == 2:
        b = _bias(extra[1], W.shape[1], where) * a.get("beta", 1.0)
    ctx.chain.dense(W, b, where, name)


def _matmul(ctx, node, a, extra, where, name):
    ctx.chain.dense(extra[0], None, where, name)


def _add(ctx, node, a, extra, where, name):
    if len(extra) != 1 or ctx.chain.open_dense is None:
        raise ValueError(f"{where} is supported only as the bias of the MatMul or Gemm "
                         "right before it")
    ctx.chain.add_bias(_bias(extra[0], ctx.chain.shape[0], where), where)


def _dropout(ctx, node, a, extra, where, name):
    ins = list(node.input) + ["", ""]      # x, ratio, training_mode (opset >= 12)
    ratio = float(np.asarray(ctx.consts[ins[1]])) if ins[1] else a.get("ratio", 0.5)
    if ins[2] and bool(np.asarray(ctx.consts[ins[2]])):
        raise ValueError(f"{where} runs in training mode")
    # The ratio plays no part at inference; clipped into lrpfast's range.
    ctx.chain.identity(name, rate=ratio)


def _softmax(ctx, node, a, extra, where, name):
    axis = a.get("axis", 1 if ctx.opset is not None and ctx.opset < 13 else -1)
    ctx.chain.softmax(axis, where, name)


def _flatten(ctx, node, a, extra, where, name):
    axis = a.get("axis", 1)
    if axis % (len(ctx.chain.shape) + 1) != 1:
        raise ValueError(f"{where} has axis={axis}; lrpfast takes only Flatten(axis=1)")
    ctx.chain.flatten(where, name)


def _reshape(ctx, node, a, extra, where, name):
    t = [int(v) for v in np.asarray(extra[0]).reshape(-1)]
    if a.get("allowzero", 0) and 0 in t:
        raise ValueError(f"{where} makes an empty tensor")
    full = [ctx.batch_dim] + list(ctx.chain.shape)
    # 0 copies the input dimension at that position.
    t = [full[i] if v == 0 and i < len(full) else v for i, v in enumerate(t)]
    if len(t) < 2 or not (t[0] is None or t[0] == ctx.batch_dim or
                          (t[0] == -1 and -1 not in t[1:])) or None in t[1:]:
        raise ValueError(
            f"{where} reshapes (batch, *{ctx.chain.shape}) to {t}; lrpfast takes only "
            "reshapes that keep the batch dimension first")
    ctx.chain.reshape(t[1:], where, name)


def _layernorm(ctx, node, a, extra, where, name):
    shape = ctx.chain.shape
    axis = a.get("axis", -1) % (len(shape) + 1)
    over_all = axis == 1 or (len(shape) == 1 and axis == len(shape))
    ctx.chain.layernorm(extra[0], extra[1] if len(extra) > 1 else None,
                        a.get("epsilon", 1e-5), over_all, where, name)


_OPS = {
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Add": _add,
    "Relu": lambda ctx, n, a, e, where, name: ctx.chain.activation("relu", where, name),
    "Tanh": lambda ctx, n, a, e, where, name: ctx.chain.activation("tanh", where, name),
    "Sigmoid": lambda ctx, n, a, e, where, name: ctx.chain.activation("sigmoid", where,
                                                                      name),
    "Softmax": _softmax,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Identity": lambda ctx, n, a, e, where, name: ctx.chain.identity(name),
    "Dropout": _dropout,
    "LayerNormalization": _layernorm,
    "Constant": None,     # folded into the constants by _apply
}


def _constant(ctx, node, attrs, where):
    if "value" not in attrs:
        raise ValueError(f"{where} is not a tensor constant")
    ctx.consts[node.output[0]] = ctx.onnx.numpy_helper.to_array(attrs["value"])


def _bias(c, n_out, where):
    """A Gemm/Add bias broadcast to ``(n_out,)`` (scalar, (n,), (1, n))."""
    c = np.asarray(c, dtype=np.float64)
    if c.size not in (1, n_out) or (c.ndim == 2 and c.shape[0] != 1) or c.ndim > 2:
        raise ValueError(f"{where} has a bias of shape {c.shape}; lrpfast takes one "
                         f"value per output ({n_out})")
    return np.broadcast_to(c.reshape(-1), (n_out,)).copy()


# ---------------------------------------------------------------------------
# The file and the graph's input
# ---------------------------------------------------------------------------

def _load(onnx, path_or_model):
    """``(model, label for messages)`` from a ModelProto or a file, checked."""
    if isinstance(path_or_model, onnx.ModelProto):
        model, label = path_or_model, "model"
    elif isinstance(path_or_model, (str, os.PathLike)):
        model, label = _read(onnx, os.fspath(path_or_model)), repr(os.fspath(path_or_model))
    else:
        raise TypeError(
            "path_or_model must be a path to an .onnx file or an onnx.ModelProto, "
            f"got {type(path_or_model).__name__}")
    if not model.graph.node or not model.graph.output:
        raise ValueError(f"{label} is not an ONNX model (no graph nodes or outputs)")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ValueError(f"{label} is not a valid ONNX model ({exc})") from None
    return model, label


def _read(onnx, path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path_or_model: no such file: {path!r}")
    with open(path, "rb") as fh:
        head = fh.read(2)
    # Protobuf parsing is lenient (an empty file is an empty model), so the
    # graph is checked after loading too; zip archives (.npz, .pt) and
    # pickles are named here, and never unpickled.
    if head == b"PK" or head[:1] == b"\x80":
        raise ValueError(f"{path!r} is not an ONNX model (it looks like a zip archive "
                         "or a pickle)")
    try:
        return onnx.load(path)
    except Exception as exc:  # DecodeError, ValueError, ...
        raise ValueError(f"{path!r} is not a readable ONNX model ({exc})") from None


def _initializers(onnx, graph, label):
    consts = {}
    for init in graph.initializer:
        try:
            consts[init.name] = onnx.numpy_helper.to_array(init)
        except Exception as exc:
            raise ValueError(f"{label}: cannot read initializer {init.name!r} "
                             f"({exc})") from None
    return consts


def _single_input(onnx, graph, consts, label):
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ValueError(
            f"{label}: lrpfast takes a graph with one input and one output, got "
            f"{len(inputs)} inputs and {len(graph.output)} outputs")
    TP = onnx.TensorProto
    elem = inputs[0].type.tensor_type.elem_type
    if elem not in (TP.FLOAT, TP.DOUBLE, TP.FLOAT16):
        raise ValueError(
            f"{label}: input {inputs[0].name!r} has element type "
            f"{TP.DataType.Name(elem)}; lrpfast takes float or double inputs")
    return inputs[0]


def _dims(value_info):
    """Shape of a graph input as a list of ints and None (symbolic)."""
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]


def _shapes(dims, input_shape, name, label):
    """``(input_shape, what the graph sees per probe)``.

    The graph sees its declared shape; with symbolic sizes, a flat vector for
    a (batch, n) input, else the probe itself.
    """
    known = None if dims is None else tuple(dims[1:])
    if input_shape is None and (known is None or None in known):
        raise ValueError(f"{label}: the shape of input {name!r} is not fully known "
                         f"({dims}); pass input_shape")
    shape = check_size(input_shape, known, f"the graph input {name!r}")
    if known is not None and None not in known:
        return shape, known
    if len(known or ()) == 1:
        return shape, (math.prod(shape),)
    if known is None or (len(known) == len(shape) and all(
            d is None or d == s for d, s in zip(known, shape))):
        return shape, shape
    raise ValueError(f"input_shape {shape} does not fit the graph input {name!r} of "
                     f"shape {dims}")
