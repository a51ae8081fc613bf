"""PyTorch: an ``nn.Sequential``, or any ``nn.Module`` that torch.fx traces into a chain."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ._chain import Chain, check_size, require, resolve_dtype, unsupported

_MODULES_TAKEN = ("Linear, ReLU, Tanh, Sigmoid, Identity, Dropout, Flatten, Softmax "
                  "and LayerNorm")
_CALLS_TAKEN = ("F.relu, torch.relu, torch.tanh, torch.sigmoid, F.softmax, "
                "torch.flatten, F.dropout, F.linear and the methods .relu(), .tanh(), "
                ".sigmoid(), .softmax(), .flatten(), .view(), .reshape(), .size()")


@dataclass
class _Step:
    """One link of the chain: a module, or a function/method call with its arguments."""

    where: str                  # for messages: "Linear at index 0", "node 'relu' (...)"
    name: str                   # the lrpfast layer's name
    module: object = None       # a torch module, or None for a call
    call: str | None = None     # canonical call name ("relu", "view", ...)
    args: tuple = ()            # call arguments after the data tensor (resolved)
    kwargs: dict = field(default_factory=dict)

    @property
    def role(self):
        kind = type(self.module).__name__ if self.module is not None else self.call
        return {"Linear": "linear", "linear": "linear", "Flatten": "reshape",
                "flatten": "reshape", "view": "reshape", "reshape": "reshape"}.get(kind)


def from_torch(module, input_shape=None, dtype=None):
    """A :class:`Network` computing a PyTorch module (in eval mode).

    Parameters
    ----------
    module : torch.nn.Module
        Either an ``nn.Sequential`` of ``Linear``, ``ReLU``, ``Tanh``,
        ``Sigmoid``, ``Identity``, ``Dropout``, ``Flatten``, ``Softmax`` and
        ``LayerNorm`` (nested Sequentials are walked in order), or any module
        whose ``forward`` :func:`torch.fx.symbolic_trace` traces into a chain:
        calls of those modules, ``F.relu``, ``torch.relu``, ``torch.tanh``,
        ``torch.sigmoid``, ``F.softmax``, ``torch.flatten``, ``F.dropout``,
        ``F.linear`` and the tensor methods ``.relu()``, ``.tanh()``,
        ``.sigmoid()``, ``.softmax()``, ``.flatten()``, ``.view()`` and
        ``.reshape()`` (with ``x.size(0)`` or ``-1`` for the batch), each
        applied to the result of the one before.  Dropout is read as at
        inference (identity), whatever ``module.training`` is; the module is
        not touched.
    input_shape : tuple of int or None
        Probe shape.  None gives ``(in_features,)`` of the first Linear.  When
        the module flattens or reshapes its input itself before the first
        Linear, the network computes ``module(x)`` for ``x`` of shape
        ``(B, *input_shape)``; otherwise it computes
        ``module(x.reshape(B, -1))``.
    dtype : {"float32", "float64"} or None
        None keeps the parameters' dtype (float16/bfloat16 become float32).

    Returns
    -------
    Network
        One lrpfast layer per torch module or call, in order (``Linear``
        becomes ``Dense(out_features)`` with a linear activation and its
        weight transposed to ``(in_features, out_features)``; a reshape to a
        multi-dim probe adds no layer).

    Raises
    ------
    ImportError
        torch is not installed.
    TypeError
        ``module`` is not an ``nn.Module``.
    ValueError
        A module or call of another kind, or one that lrpfast cannot
        reproduce exactly, named with its position (``Conv2d at index 0``) or
        its fx node and op (``node 'add' (call_function add)``); a graph that
        is not a chain (a residual add, a cat); a module fx cannot trace.
    """
    torch = require("torch", "from_torch")
    if not isinstance(module, torch.nn.Module):
        raise TypeError(
            "module must be a torch.nn.Module (an nn.Sequential, or a module that "
            f"torch.fx traces into a chain), got {type(module).__module__}."
            f"{type(module).__name__}")
    if type(module).forward is torch.nn.Sequential.forward:
        steps = _sequential_steps(torch, module)
    else:
        steps = _traced_steps(torch, module)
    params = [p for p in module.parameters() if p.is_floating_point()]
    dt = resolve_dtype(dtype, np.float64 if params and params[0].dtype == torch.float64
                       else np.float32)
    shape, tshape = _shapes(steps, input_shape)
    chain = Chain(tshape, note=f" (input_shape {shape})")
    for step in steps:
        if step.module is not None:
            _MODULES[type(step.module).__name__](torch, chain, step.module, step)
        else:
            _CALLS[step.call](torch, chain, step)
    return chain.network(shape, dt)


def _shapes(steps, input_shape):
    """``(input_shape, what the module's first step receives per probe)``."""
    first = next((i for i, s in enumerate(steps) if s.role == "linear"), None)
    if input_shape is None:
        if first is None:
            raise ValueError("input_shape is needed: the module has no Linear layer to "
                             "read the input size from")
        n = _in_features(steps[first])
        return (n,), (n,)
    shape = check_size(input_shape, None, "the module")
    # The probe itself when the module reshapes it before its first Linear,
    # else the C-order flattened probe.
    reshaped = any(s.role == "reshape" for s in steps[:first])
    return shape, shape if reshaped else (math.prod(shape),)


def _in_features(step):
    if step.module is not None:
        return step.module.in_features
    return int(step.args[0].shape[1])          # F.linear(x, weight (out, in), ...)


def _array(torch, tensor, where):
    """A NumPy copy of a parameter (float16/bfloat16 widened to float32)."""
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{where} takes a tensor parameter, got {type(tensor).__name__}")
    t = tensor.detach()
    if t.device.type == "meta":
        raise ValueError(f"{where} has no data (meta device); load its weights first")
    t = t.cpu()
    if t.dtype not in (torch.float32, torch.float64):
        t = t.to(torch.float32)
    return t.numpy().copy()


# ---------------------------------------------------------------------------
# nn.Sequential
# ---------------------------------------------------------------------------

def _sequential_steps(torch, module):
    steps = [_Step(f"{type(m).__name__} at index {pos}",
                   f"{type(m).__name__.lower()}_{pos}", module=m)
             for pos, m in _leaves(torch, module)]
    if not steps:
        raise ValueError("module is an empty nn.Sequential")
    for step in steps:
        # Exact types: a subclass may compute something else in forward().
        if type(step.module).__name__ not in _MODULES or \
                type(step.module) is not getattr(torch.nn, type(step.module).__name__):
            raise unsupported(step.where, "from_torch", _MODULES_TAKEN)
    return steps


def _leaves(torch, module, prefix=""):
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
            yield from _leaves(torch, child, pos + ".")
        else:
            yield pos, child


def _check_plain_sequential(torch, module, where):
    if type(module).forward is not torch.nn.Sequential.forward:
        raise ValueError(
            f"{type(module).__name__} at index {where} overrides forward(); lrpfast "
            "reads only plain nn.Sequential containers (or traces other modules "
            "with torch.fx)")


# ---------------------------------------------------------------------------
# Any module, through torch.fx
# ---------------------------------------------------------------------------

_BATCH = object()    # x.size(0): the batch size
_SHAPE = object()    # x.shape / x.size(): the whole shape (indexed at 0 only)


def _trace(torch, module):
    import torch.fx

    try:
        return torch.fx.symbolic_trace(module)
    except Exception as exc:    # TraceError, data-dependent control flow, ...
        raise ValueError(
            f"module: torch.fx cannot trace {type(module).__name__} ({type(exc).__name__}: "
            f"{exc}); from_torch takes an nn.Sequential or a module whose forward is "
            "a plain chain of supported calls") from None


def _traced_steps(torch, module):
    """The chain of an fx graph: each node reads only the node before it."""
    gm = _trace(torch, module)
    nodes = list(gm.graph.nodes)
    inputs = [n for n in nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise ValueError(f"module: forward takes {len(inputs)} inputs "
                         f"({[n.name for n in inputs]}); lrpfast takes one")
    consts, steps, cur = {}, [], inputs[0]
    for node in nodes:
        where = f"node {node.name!r} ({node.op} {_target_name(node.target)})"
        if node.op == "placeholder":
            continue
        if node.op == "get_attr":
            consts[node] = _attr(gm, node.target)
            continue
        if node.op == "output":
            if node.args[0] is not cur:
                raise ValueError(f"{where} returns {node.args[0]!r}, not the end of the "
                                 f"chain ({cur.name!r})")
            break
        meta = _shape_query(node, consts)
        if meta is not None:
            consts[node] = meta
            continue
        _check_link(node, cur, consts, where)
        steps.append(_node_step(torch, gm, node, consts, where))
        cur = node
    return steps


def _check_link(node, cur, consts, where):
    """A chain link reads the previous link's output, first, and nothing else."""
    from torch.fx import Node

    flat = list(node.args) + list(node.kwargs.values())
    flat += [a for v in flat if isinstance(v, (tuple, list)) for a in v]
    data = [a for a in flat if isinstance(a, Node) and a not in consts]
    if data != [cur] or (node.args and node.args[0] is not cur):
        raise ValueError(
            f"{where} is not a link of a chain: it reads {[d.name for d in data]}, while "
            f"a chain link reads only the output of the one before ({cur.name!r}); "
            "lrpfast takes no residual connections, concatenations or branches")


def _shape_query(node, consts):
    """``_BATCH``/``_SHAPE`` for ``x.size(0)``, ``x.shape``, ``x.shape[0]``; else None."""
    import operator

    from torch.fx import Node

    args = node.args
    if not args or not isinstance(args[0], Node) or \
            (args[0] in consts and consts[args[0]] is not _SHAPE):
        return None           # the shape of a parameter is not the batch size
    if node.op == "call_method" and node.target == "size":
        dim = args[1] if len(args) > 1 else node.kwargs.get("dim")
        return _SHAPE if dim is None else (_BATCH if dim == 0 else None)
    if node.op == "call_function" and node.target is getattr and args[1:] == ("shape",):
        return _SHAPE
    if node.op == "call_function" and node.target is operator.getitem and \
            consts.get(args[0]) is _SHAPE and args[1] == 0:
        return _BATCH
    return None


def _node_step(torch, gm, node, consts, where):
    """The step of one fx node, arguments after the data tensor resolved."""
    resolve = lambda v: consts.get(v, v) if not isinstance(v, (tuple, list)) \
        else type(v)(resolve(a) for a in v)
    if node.op == "call_module":
        m = gm.get_submodule(node.target)
        where = f"node {node.name!r} (call_module {node.target}: {type(m).__name__})"
        if type(m).__name__ not in _MODULES or \
                type(m) is not getattr(torch.nn, type(m).__name__):
            raise unsupported(where, "from_torch", _MODULES_TAKEN)
        return _Step(where, node.target, module=m)
    call = _call_name(torch, node)
    if call not in _CALLS:
        raise unsupported(where, "from_torch", _CALLS_TAKEN + " and the modules " +
                          _MODULES_TAKEN)
    return _Step(where, node.name, call=call, args=tuple(resolve(a) for a in node.args[1:]),
                 kwargs={k: resolve(v) for k, v in node.kwargs.items()})


def _call_name(torch, node):
    """Canonical name of a call_function/call_method node, or None."""
    F = torch.nn.functional
    if node.op == "call_method":
        return node.target if node.target in ("relu", "tanh", "sigmoid", "softmax",
                                              "flatten", "view", "reshape") else None
    if node.op != "call_function":
        return None
    table = {F.relu: "relu", torch.relu: "relu", torch.tanh: "tanh", F.tanh: "tanh",
             torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid", F.softmax: "softmax",
             torch.softmax: "softmax", torch.flatten: "flatten", torch.reshape: "reshape",
             F.dropout: "dropout", F.linear: "linear"}
    return table.get(node.target)


def _target_name(target):
    return target if isinstance(target, str) else getattr(target, "__name__", repr(target))


def _attr(gm, target):
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


# ---------------------------------------------------------------------------
# Handlers: modules (by class name; exact torch.nn classes only) and calls
# ---------------------------------------------------------------------------

def _linear(torch, chain, m, step):
    W = _array(torch, m.weight, step.where).T
    b = _array(torch, m.bias, step.where) if m.bias is not None else None
    chain.dense(W, b, step.where, step.name)


def _dropout(torch, chain, m, step):
    if not 0.0 <= m.p < 1.0:
        raise ValueError(f"{step.where} has p={m.p}; lrpfast takes 0 <= p < 1")
    chain.identity(step.name, rate=m.p)


def _layernorm(torch, chain, m, step):
    norm = tuple(m.normalized_shape)
    over_all = norm in (chain.shape, (math.prod(chain.shape),))
    g = _array(torch, m.weight, step.where) if m.weight is not None else None
    b = _array(torch, m.bias, step.where) if m.bias is not None else None
    chain.layernorm(g, b, m.eps, over_all, step.where, step.name)


_MODULES = {
    "Linear": _linear,
    "ReLU": lambda torch, chain, m, s: chain.activation("relu", s.where, s.name),
    "Tanh": lambda torch, chain, m, s: chain.activation("tanh", s.where, s.name),
    "Sigmoid": lambda torch, chain, m, s: chain.activation("sigmoid", s.where, s.name),
    "Identity": lambda torch, chain, m, s: chain.identity(s.name),
    "Dropout": _dropout,
    "Flatten": lambda torch, chain, m, s: chain.flatten(s.where, s.name, m.start_dim,
                                                        m.end_dim),
    "Softmax": lambda torch, chain, m, s: chain.softmax(m.dim, s.where, s.name, "dim"),
    "LayerNorm": _layernorm,
}


def _arg(step, i, name, default):
    """Argument ``name`` of a call (position ``i`` after the data tensor)."""
    return step.args[i] if len(step.args) > i else step.kwargs.get(name, default)


def _call_linear(torch, chain, step):
    W = _arg(step, 0, "weight", None)
    b = _arg(step, 1, "bias", None)
    chain.dense(_array(torch, W, step.where).T,
                None if b is None else _array(torch, b, step.where), step.where, step.name)


def _call_dropout(torch, chain, step):
    p = _arg(step, 0, "p", 0.5)
    if not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise ValueError(f"{step.where} has p={p!r}; lrpfast takes 0 <= p < 1")
    chain.identity(step.name, rate=p)


def _call_flatten(torch, chain, step):
    # torch.flatten(x) and x.flatten() start at dim 0, the batch: refused
    chain.flatten(step.where, step.name, _arg(step, 0, "start_dim", 0),
                  _arg(step, 1, "end_dim", -1))


def _call_reshape(torch, chain, step):
    """``.view``/``.reshape``/``torch.reshape``: the batch stays first."""
    target = step.args[0] if len(step.args) == 1 and isinstance(step.args[0], (tuple, list)) \
        else step.args if step.args else step.kwargs.get("shape", ())
    target = list(target)
    if not all(t is _BATCH or isinstance(t, int) for t in target) or not target:
        raise ValueError(f"{step.where} reshapes to {target}; lrpfast takes ints, -1 and "
                         "x.size(0)")
    head, rest = target[0], target[1:]
    if not rest or not (head is _BATCH or (head == -1 and -1 not in rest)):
        raise ValueError(
            f"{step.where} reshapes to {['B' if t is _BATCH else t for t in target]}; "
            "lrpfast takes only reshapes that keep the batch dimension first "
            "(x.size(0) or -1, then the probe shape)")
    chain.reshape(rest, step.where, step.name)


_CALLS = {
    "relu": lambda torch, chain, s: chain.activation("relu", s.where, s.name),
    "tanh": lambda torch, chain, s: chain.activation("tanh", s.where, s.name),
    "sigmoid": lambda torch, chain, s: chain.activation("sigmoid", s.where, s.name),
    "softmax": lambda torch, chain, s: chain.softmax(_arg(s, 0, "dim", None), s.where,
                                                     s.name, "dim"),
    "dropout": _call_dropout,
    "linear": _call_linear,
    "flatten": _call_flatten,
    "view": _call_reshape,
    "reshape": _call_reshape,
}
