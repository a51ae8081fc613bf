"""explain() and explain_batch(): LRP through a Network.

One probe goes through a single compiled call (``_kernels.explain_single``)
that walks the whole network: the forward trace, the class choice, the
seeding and every boundary.  Batches go through :func:`_walk`, layer by
layer, with the matrix products done by BLAS and the element-wise parts by
fused Cython loops (``backend="cython"``) or by :mod:`lrpfast.reference`
(``backend="numpy"``).
"""

from __future__ import annotations

import functools
import os
import weakref
from dataclasses import dataclass

import numpy as np

from . import reference
from ._progress import progress_bar
from ._validation import (as_float_array, check_bool, check_choice, check_class,
                          check_class_array, check_int)
from .layers import ACT_CODES, ACTIVATIONS
from .network import Network
from ._dispatch import kernels as _kernels
from .rules import resolve_rules

BACKENDS = ("cython", "numpy")

# Columns of the per-boundary statistics arrays (kernels and reference).
SUM_IN, SUM_OUT, BIAS, STAB, DEG_SHARE, N_DEG = range(6)
N_STATS = 6


@dataclass(frozen=True)
class Boundary:
    """Relevance bookkeeping at one layer boundary.

    Attributes
    ----------
    index : int
        Position of the layer in ``net.layers``.
    name : str
        The layer's name.
    layer : str
        The layer's description, e.g. ``"Dense(16, relu)"``.
    rule : str
        ``"epsilon"``, ``"gamma"``, ``"alpha-beta"``, ``"passthru"`` or
        ``"SKIPPED"``.
    reason : str or None
        For SKIPPED layers, e.g. ``"no epsilon rule"``.
    sum_in, sum_out : float
        Σ R at the layer's input and output (float64 sums).
    residual : float
        ``|sum_in - sum_out|``.
    bias_share, stabilizer_share, degenerate_share : float
        Relevance absorbed by the bias, by the stabiliser, and lost at
        degenerate neurons; they add up to ``sum_out - sum_in``.
    degenerate : int
        Neurons with ``R_j != 0`` whose alpha-beta denominator was 0.
    """

    index: int
    name: str
    layer: str
    rule: str
    reason: str | None
    sum_in: float
    sum_out: float
    residual: float
    bias_share: float = 0.0
    stabilizer_share: float = 0.0
    degenerate_share: float = 0.0
    degenerate: int = 0

    @property
    def label(self):
        """``rule`` as printed: ``SKIPPED (no epsilon rule)`` for skipped layers."""
        return f"SKIPPED ({self.reason})" if self.rule == "SKIPPED" else self.rule


@dataclass(frozen=True, eq=False)
class Explanation:
    """The LRP explanation of one probe.

    Attributes
    ----------
    relevance : ndarray of shape ``net.input_shape``
        Signed input relevance, in the network's dtype.
    explained_class : int
    forced : bool
        Whether ``explained_class`` was forced rather than the argmax.
    logit : float
        The seeded relevance ``R_c = logit_c``.
    output : ndarray of shape ``net.output_shape``
        The network's output for the probe.
    stats : ndarray of float64, shape (n_layers, 6)
        Per boundary: sum_in, sum_out, bias_share, stabilizer_share,
        degenerate_share, degenerate count (the numbers behind ``boundaries``).
    rule : str
        Label of the rule(s) applied.
    boundaries : tuple of Boundary
        One per layer, input side first (``boundaries[k]`` is ``net.layers[k]``).
    max_residual : float
        Max of the boundary residuals.
    output_relevance : ndarray of shape (n_outputs,) or None
        The top relevance given by the caller (``output_relevance=``), or None
        when the top was seeded with ``R_c = logit_c``.
    layer_relevance : tuple of ndarray or None
        With ``layers=True``: ``layer_relevance[k]`` is the relevance at the
        input of layer ``k`` (``[0]`` has the input shape, the others are
        flat), and ``layer_relevance[L]`` (``L = len(net.layers)``) is the top
        relevance the walk started from.  None otherwise.
    absorb_bias : bool
        The bias mode the explanation was made with (the verdict needs it).
    healthy : bool
        Whether every boundary residual is accounted for by the shares its
        rule allows, to rounding: the verdict that :func:`lrpfast.lrp_report`
        prints (:func:`lrpfast.report.check_conservation`).
    verdict : str
        That verdict as one line, e.g. ``"healthy: every residual is
        accounted for by the stabiliser shares, to rounding"`` or
        ``"FLAGGED: layer 1 ..."``.
    """

    relevance: np.ndarray
    explained_class: int
    forced: bool
    logit: float
    output: np.ndarray
    stats: np.ndarray
    rule: str
    _layers: tuple = ()
    _rules: tuple = ()
    output_relevance: np.ndarray | None = None
    layer_relevance: tuple | None = None
    absorb_bias: bool = False

    # Built on first access: most callers of a fast path never look at them.
    @functools.cached_property
    def boundaries(self):
        return _boundaries(self._layers, self._rules, self.stats)

    @functools.cached_property
    def max_residual(self):
        return float(np.abs(self.stats[:, SUM_IN] - self.stats[:, SUM_OUT]).max())

    @functools.cached_property
    def _verdict(self):
        from .report import check_conservation   # report imports this module

        return check_conservation(self, self.absorb_bias)

    @property
    def healthy(self):
        return self._verdict.healthy

    @property
    def verdict(self):
        return self._verdict.message


@dataclass(frozen=True, eq=False)
class BatchExplanation:
    """LRP explanations of a batch of ``B`` probes.

    Attributes
    ----------
    relevance : ndarray of shape ``(B, *net.input_shape)``
    explained_class : ndarray of int64, shape (B,)
    forced : bool
    logits : ndarray of float64, shape (B,)
    outputs : ndarray of shape ``(B, *net.output_shape)``
    stats : ndarray of float64, shape (B, n_layers, 6)
        Per boundary: sum_in, sum_out, bias_share, stabilizer_share,
        degenerate_share, degenerate count.
    max_residual : ndarray of float64, shape (B,)
    rule : str
    output_relevance : ndarray of shape (B, n_outputs) or None
        The caller's top relevance (``output_relevance=``), or None.
    layer_relevance : tuple of ndarray or None
        With ``layers=True``: ``layer_relevance[k]`` of shape (B, n) is the
        relevance at the input of layer ``k``, ``[L]`` the top relevance.
    absorb_bias : bool
        The bias mode the batch was explained with.

    ``batch[i]`` is the :class:`Explanation` of probe ``i``.
    """

    relevance: np.ndarray
    explained_class: np.ndarray
    forced: bool
    logits: np.ndarray
    outputs: np.ndarray
    stats: np.ndarray
    max_residual: np.ndarray
    rule: str
    _layers: tuple = ()
    _rules: tuple = ()
    output_relevance: np.ndarray | None = None
    layer_relevance: tuple | None = None
    absorb_bias: bool = False

    @property
    def residuals(self):
        """``|sum_in - sum_out|`` per probe and boundary, shape (B, n_layers)."""
        return np.abs(self.stats[:, :, SUM_IN] - self.stats[:, :, SUM_OUT])

    def __len__(self):
        return self.relevance.shape[0]

    def __getitem__(self, i):
        i = check_int(i, "index", low=-len(self), high=len(self) - 1) % len(self)
        return Explanation(
            relevance=self.relevance[i], explained_class=int(self.explained_class[i]),
            forced=self.forced, logit=float(self.logits[i]), output=self.outputs[i],
            stats=self.stats[i], rule=self.rule, _layers=self._layers,
            _rules=self._rules, absorb_bias=self.absorb_bias,
            output_relevance=None if self.output_relevance is None
            else self.output_relevance[i],
            layer_relevance=None if self.layer_relevance is None
            else tuple(v[i] for v in self.layer_relevance))

    def importance(self, by_class=False):
        """Global feature importance: the mean ``|R|`` over the batch.

        Parameters
        ----------
        by_class : bool, default False
            Split the mean by explained class.

        Returns
        -------
        ndarray of float64
            ``by_class=False``: shape ``input_shape``, the mean over the rows
            of ``|relevance|``.  ``by_class=True``: shape
            ``(n_outputs, *input_shape)``, where row ``k`` is the mean of
            ``|relevance|`` over the rows whose ``explained_class`` is ``k``;
            a class that no row explains gets a row of zeros (check
            ``np.bincount(b.explained_class, minlength=n_outputs)`` to tell
            it from a class whose relevance is zero).

        Examples
        --------
        >>> b = lf.explain_batch(net, X)                    # doctest: +SKIP
        >>> order = np.argsort(-b.importance().ravel())     # most important first
        """
        by_class = check_bool(by_class, "by_class")
        mag = np.abs(self.relevance.astype(np.float64, copy=False))
        if not by_class:
            return mag.mean(axis=0)
        n_out = int(np.prod(self.outputs.shape[1:]))
        counts = np.bincount(self.explained_class, minlength=n_out)
        sums = np.zeros((n_out,) + mag.shape[1:])
        np.add.at(sums, self.explained_class, mag)
        present = counts > 0
        sums[present] /= counts[present].reshape((-1,) + (1,) * (mag.ndim - 1))
        return sums


# --------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------

def explain(net, x, rule="epsilon", *, eps=1e-2, gamma=0.25, alpha=2.0,
            forced_class=None, absorb_bias=False, backend="cython", n_threads=None,
            output_relevance=None, layers=False):
    """Explain one probe with Layer-wise Relevance Propagation.

    Parameters
    ----------
    net : Network
    x : array-like of shape ``net.input_shape``
        The probe.  Ints and float16 are cast to the network's dtype.
    rule : str, Rule, Composite or list, default "epsilon"
        A rule name (``"epsilon"``, ``"gamma"``, ``"alpha-beta"``, ``"z-plus"``,
        ``"w-square"``, ``"flat"``, ``"gamma-generalized"``), a rule object
        (:class:`~lrpfast.Epsilon`, ..., :class:`~lrpfast.ZBox`), a named
        composite (``"epsilon-plus"``, ... or :func:`~lrpfast.composite`), or a
        list with one rule per Dense layer, input side first.
    eps : float, default 1e-2
        Stabiliser of the epsilon, gamma and gamma-generalized rules given by
        name (> 0).  (w-square, z-box and alpha-beta take theirs on the object.)
    gamma : float, default 0.25
        Of the gamma and gamma-generalized rules given by name (>= 0).
    alpha : float, default 2.0
        Of the alpha-beta rule given by name (>= 1; beta = alpha - 1).
        A keyword that no rule uses warns (``UserWarning``) when it differs
        from its default.
    forced_class : int or None
        Class to explain; None explains ``argmax(output)``.
    absorb_bias : bool, default False
        Let the bias take part in the denominators (the bias then absorbs a
        share of the relevance).
    backend : {"cython", "numpy"}
        ``"numpy"`` runs :mod:`lrpfast.reference` instead of the kernels.
    n_threads : int or None
        OpenMP threads for layers with at least 2**22 weights (None: all
        cores).  Results do not depend on it.
    output_relevance : array-like of shape (n_outputs,) or None
        Seed the top with this relevance instead of ``R_c = logit_c``
        (contrastive explanations, all outputs at once, regression).  Cannot
        be combined with ``forced_class``.  ``explained_class`` and ``logit``
        still report the argmax.
    layers : bool, default False
        Also return the relevance at every layer boundary
        (``Explanation.layer_relevance``).

    Returns
    -------
    Explanation
    """
    rules, absorb_bias, backend = _check_common(net, rule, eps, gamma, alpha,
                                                absorb_bias, backend)
    A = _check_probe(net, x)
    forced = None if forced_class is None else check_class(
        forced_class, "forced_class", net.n_outputs)
    n_threads = _check_threads(n_threads)
    seed = _check_seed(net, output_relevance, forced, None)
    layers = check_bool(layers, "layers")
    if rules.checks_input:
        for r in rules:
            r.check_input(net, A, "x")
    plan = _plan(net, rules, absorb_bias) if backend == "cython" else None
    layer_rel = None
    if plan is not None:
        rel = np.empty(net.n_inputs, dtype=net.dtype)
        out = np.empty(net.n_outputs, dtype=net.dtype)
        stats = np.empty((len(net.layers), N_STATS))
        buf = None
        if layers:
            sizes = [layer.n_in for layer in net.layers] + [net.n_outputs]
            buf = np.empty(sum(sizes), dtype=net.dtype)
        cls, logit, finite = _kernels.explain_single(
            plan, A[0], -1 if forced is None else forced, rel, out, stats, n_threads,
            seed, buf)
        if layers:
            layer_rel = tuple(np.split(buf, np.cumsum(sizes)[:-1]))
    else:
        keep = {} if layers else None
        with np.errstate(over="ignore", invalid="ignore"):
            res = _walk(net, A, rules, None if forced is None else np.array([forced]),
                        absorb_bias, backend, seed=None if seed is None else seed[None],
                        layer_out=keep)
        rel, out, stats, cls, logit = (res.relevance[0], res.outputs[0], res.stats[0],
                                       int(res.explained_class[0]), res.logits[0])
        finite = _finite(stats, logit)
        if layers:
            layer_rel = tuple(np.array(keep[k][0]) for k in range(len(net.layers) + 1))
    if not finite:
        _overflow("x", net)
    if layer_rel is not None:
        layer_rel = (layer_rel[0].reshape(net.input_shape),) + layer_rel[1:]
    return Explanation(
        relevance=rel.reshape(net.input_shape), explained_class=int(cls),
        forced=forced is not None, logit=float(logit),
        output=out.reshape(net.output_shape), stats=stats,
        rule=rules.label, _layers=net.layers, _rules=rules, absorb_bias=absorb_bias,
        output_relevance=seed, layer_relevance=layer_rel)


def explain_batch(net, X, rule="epsilon", *, eps=1e-2, gamma=0.25, alpha=2.0,
                  forced_class=None, absorb_bias=False, backend="cython",
                  n_threads=None, chunk_size=None, output_relevance=None, layers=False,
                  progress=False):
    """Explain a batch of probes; same math as :func:`explain`, row by row.

    Parameters
    ----------
    net : Network
    X : array-like of shape ``(B, *net.input_shape)``
    rule, eps, gamma, alpha, absorb_bias, backend
        As in :func:`explain`.
    forced_class : None, int or array-like of B ints
        Class to explain for every probe, or one per probe.
    n_threads : int or None
        Threads for BLAS (None: BLAS's default).  Needs threadpoolctl
        (``pip install threadpoolctl``); without it the argument is
        validated and BLAS keeps its default.
    chunk_size : int or None
        Probes per chunk (None: chosen so that a chunk's activations take
        about 16 MB); bounds the memory of large batches.
    output_relevance : array-like of shape (B, n_outputs) or None
        One top relevance vector per probe (see :func:`explain`).
    layers : bool, default False
        Also return the relevance at every layer boundary
        (``BatchExplanation.layer_relevance``, arrays of shape (B, n)).
    progress : bool, default False
        Show a tqdm progress bar on stderr, updated once per chunk (needs
        ``pip install "lrpfast[progress]"``).

    Returns
    -------
    BatchExplanation
    """
    rules, absorb_bias, backend = _check_common(net, rule, eps, gamma, alpha,
                                                absorb_bias, backend)
    arr = _validation_as_batch(net, X)
    B = arr.shape[0]
    forced = check_class_array(forced_class, "forced_class", B, net.n_outputs)
    seed = _check_seed(net, output_relevance, forced, B)
    layers = check_bool(layers, "layers")
    if rules.checks_input:
        for r in rules:
            r.check_input(net, arr, "X")
    blas_limit = None if n_threads is None else check_int(n_threads, "n_threads", low=1)
    chunk_size = _chunk_size(net, chunk_size)
    bar = progress_bar(check_bool(progress, "progress"), B, "explain", "row")
    # The results are written chunk by chunk into arrays made once, so the
    # memory beyond them is one chunk's work.
    res = _WalkResult(np.empty((B, net.n_inputs), net.dtype), np.empty(B, np.int64),
                      np.empty(B), np.empty((B, net.n_outputs), net.dtype),
                      np.empty((B, len(net.layers), N_STATS)))
    layer_rel = None
    if layers:
        layer_rel = tuple(np.empty((B, layer.n_in), net.dtype) for layer in net.layers) + \
            (np.empty((B, net.n_outputs), net.dtype),)
    # overflow is not warned about but refused after (_finite, _overflow)
    with bar, _blas_threads(blas_limit), np.errstate(over="ignore", invalid="ignore"):
        for lo in range(0, B, chunk_size):
            hi = min(B, lo + chunk_size)
            keep = {} if layers else None
            part = _walk(net, arr[lo:hi], rules, None if forced is None else forced[lo:hi],
                         absorb_bias, backend, seed=None if seed is None else seed[lo:hi],
                         layer_out=keep)
            for whole, piece in zip(res, part):
                whole[lo:hi] = piece
            if layers:
                for k, whole in enumerate(layer_rel):
                    whole[lo:hi] = keep[k]
            bar.update(hi - lo)
    stats = res.stats
    if not _finite(stats, res.logits):
        _overflow("X", net)
    return BatchExplanation(
        relevance=res.relevance.reshape((B,) + net.input_shape),
        explained_class=res.explained_class, forced=forced is not None,
        logits=res.logits, outputs=res.outputs.reshape((B,) + net.output_shape),
        stats=stats,
        max_residual=np.abs(stats[:, :, SUM_IN] - stats[:, :, SUM_OUT]).max(axis=1),
        rule=rules.label, _layers=net.layers, _rules=rules, absorb_bias=absorb_bias,
        output_relevance=seed, layer_relevance=None if layer_rel is None else
        (layer_rel[0].reshape((B,) + net.input_shape),) + layer_rel[1:])


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------

def _check_common(net, rule, eps, gamma, alpha, absorb_bias, backend):
    if not isinstance(net, Network):
        raise TypeError(f"net must be a lrpfast Network, got {type(net).__name__}")
    if backend not in BACKENDS:
        check_choice(backend, "backend", BACKENDS)
    absorb_bias = check_bool(absorb_bias, "absorb_bias")
    rules = resolve_rules(rule, net._n_dense, eps=eps, gamma=gamma, alpha=alpha, net=net)
    if net._lrp_blocker is not None:
        k, layer = net._lrp_blocker
        raise ValueError(
            f"layer {k} ({layer.name}) has no LRP rule and changes the size "
            f"{layer.n_in} -> {layer.n_out}, so relevance cannot pass it unchanged")
    return rules, bool(absorb_bias), backend


def _check_seed(net, output_relevance, forced, B):
    """The caller's top relevance as an array of the net's dtype, or None."""
    if output_relevance is None:
        return None
    if forced is not None:
        raise ValueError(
            "output_relevance and forced_class cannot be combined: output_relevance "
            "seeds the top itself (put the relevance on the class you want)")
    shape = (net.n_outputs,) if B is None else (B, net.n_outputs)
    if isinstance(output_relevance, (str, bytes)):
        raise TypeError(f"output_relevance must be a numeric array, got {output_relevance!r}")
    if np.shape(output_relevance) != shape:
        what = "n_outputs values" if B is None else "one row of n_outputs values per probe"
        raise ValueError(
            f"output_relevance must have shape {shape} ({what}), got "
            f"{np.shape(output_relevance)}")
    if isinstance(output_relevance, np.ndarray):
        is_bool = output_relevance.dtype.kind == "b"
    else:   # a list: one True among floats would pass as 1.0
        is_bool = np.asarray(output_relevance).dtype.kind == "b" or any(
            isinstance(v, (bool, np.bool_))
            for v in np.asarray(output_relevance, dtype=object).ravel())
    if is_bool:
        raise TypeError("output_relevance must hold numbers, got booleans (True/False); "
                        "give the relevance as floats (1.0, 0.0)")
    return as_float_array(output_relevance, "output_relevance", net.dtype, copy=True)


def _check_probe(net, x):
    A, single = net._as_batch(x, "x")
    if not single:
        raise ValueError(
            f"x must be one probe of shape {net.input_shape}, got {np.shape(x)}; "
            "use explain_batch for a batch")
    return A


def _validation_as_batch(net, X):
    A, single = net._as_batch(X, "X")
    if single:
        raise ValueError(
            f"X must be a batch of shape (B, {', '.join(map(str, net.input_shape))}), "
            f"got one probe of shape {np.shape(X)}; use explain for one probe")
    return A


def _chunk_size(net, chunk_size):
    """Rows per chunk of :func:`explain_batch`: validated, or the default.

    The default keeps a chunk's activations near 16 MB.  ``lrpfast.dask``
    aligns its blocks to it, so that every row meets the same BLAS calls as
    in memory (a matrix product's rounding can depend on its row count).
    """
    if chunk_size is None:
        widths = sum(l.n_out for l in net.layers) + net.n_inputs
        return max(1, (16 << 20) // (widths * net.dtype.itemsize * 3))
    return check_int(chunk_size, "chunk_size", low=1)


_N_CORES = os.cpu_count() or 1


def _finite(stats, logits):
    """True unless a relevance or logit overflowed.

    Every boundary's Σ R is in ``stats``: one non-finite relevance anywhere
    makes one of them non-finite.
    """
    return bool(np.isfinite(stats).all() and np.isfinite(logits).all())


def _overflow(name, net):
    """Refuse, rather than return, relevance that overflowed (never a silent NaN)."""
    raise ValueError(
        f"{name}: the network's activations or relevance overflow "
        f"{net.dtype.name} for this input (non-finite values); scale the "
        "input down or use a float64 network")


def _check_threads(n_threads):
    if n_threads is None:
        return _N_CORES
    return check_int(n_threads, "n_threads", low=1)


class _blas_threads:
    """Limit BLAS to ``n`` threads (threadpoolctl, when installed).

    ``n=None`` leaves BLAS alone (the element-wise kernels of the batch path
    run on one thread, so nothing competes with it).  Limiting costs a scan
    of the loaded libraries, so it happens only on request.
    """

    def __init__(self, n):
        self.n = n
        self.ctl = None

    def __enter__(self):
        if self.n is None:
            return self
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            return self
        self.ctl = threadpool_limits(limits=self.n, user_api="blas")
        return self

    def __exit__(self, *exc):
        if self.ctl is not None:
            self.ctl.restore_original_limits()


# --------------------------------------------------------------------------
# Plans (compiled single-probe walk) and caches of derived weights
# --------------------------------------------------------------------------

_CACHE = weakref.WeakKeyDictionary()


def _cache(net):
    """Per-network cache, emptied whenever a parameter is assigned."""
    entry = _CACHE.get(net)
    version = net.version
    if entry is None or entry[0] != version:
        entry = (version, {})
        _CACHE[net] = entry
    return entry[1]


def _head_end(layers):
    """k such that ``layers[k - 1]`` is the head: the last layer that is not
    an Identity, Dropout or Flatten (0 when there is none)."""
    k = len(layers)
    while k > 0 and layers[k - 1]._op == "alias":
        k -= 1
    return k


def _logit_layer(layers):
    """k such that the logits are a_k.

    That is the input of a trailing SoftMax (or of a trailing Sigmoid layer,
    the head of a binary or multi-label classifier), else the output.
    Identity, Dropout and Flatten after the head are looked through.
    """
    k = _head_end(layers)
    if k > 0:
        last = layers[k - 1]
        if last.kind == "softmax" or (
                last.lrp == "passthru" and getattr(last, "activation", None) == "sigmoid"):
            return k - 1
    return len(layers)


def _plan(net, rules, absorb_bias):
    """The cached compiled plan, or None when a layer is unknown to the kernels."""
    cache = _cache(net)
    key = ("plan", rules, absorb_bias)
    plan = cache.get(key, False)
    if plan is False and any(layer._op is None for layer in net.layers):
        plan = cache[key] = None
    if plan is False:
        specs, dense = [], iter(rules)
        for layer in net.layers:
            act = ACT_CODES[getattr(layer, "activation", "linear")]
            code, p1, p2, p3 = (-1, 0.0, 0.0, 0.0)
            W = b = None
            aux = (None, None, None)
            if layer._op == "dense":
                rule = next(dense)
                code, p1, p2, p3 = rule.kernel_args()
                aux = rule.plan_aux(layer, absorb_bias)
            if layer._op in ("dense", "layernorm"):
                W, b = layer.weight, layer.bias
            elif layer._op == "affine":
                W, b = layer.scale, layer.shift
            specs.append((_kernels.OP_CODES[layer._op], act, code, p1, p2, p3,
                          layer.n_in, layer.n_out, W, b, getattr(layer, "eps", 0.0)) + aux)
        plan = _kernels.Plan(specs, net.dtype == np.float64, absorb_bias,
                             _logit_layer(net.layers))
        cache[key] = plan
    return plan


# --------------------------------------------------------------------------
# The batch walk
# --------------------------------------------------------------------------

class _WalkResult(tuple):
    __slots__ = ()
    _fields = ("relevance", "explained_class", "logits", "outputs", "stats")

    def __new__(cls, relevance, explained_class, logits, outputs, stats):
        return tuple.__new__(cls, (relevance, explained_class, logits, outputs, stats))

    relevance = property(lambda self: self[0])
    explained_class = property(lambda self: self[1])
    logits = property(lambda self: self[2])
    outputs = property(lambda self: self[3])
    stats = property(lambda self: self[4])


def _walk(net, A, rules, forced, absorb_bias, backend, seed=None, layer_out=None):
    """Forward a flat batch once, seed, and redistribute layer by layer.

    ``seed`` (B, n_outputs) replaces the one-hot logit at the top; with a dict
    ``layer_out``, ``layer_out[k]`` receives the relevance at the input of
    layer k and ``layer_out[L]`` the top relevance.
    """
    layers = net.layers
    L = len(layers)
    acts, sums = [A], {}
    for k, layer in enumerate(layers):
        if layer.lrp == "dense":
            S = acts[-1] @ layer.weight                 # s = a @ W (kept for epsilon)
            sums[k] = S
            Z = S + layer.bias
            if layer.activation == "relu":
                np.maximum(Z, 0, out=Z)                 # in place: one array less
                acts.append(Z)
            else:
                acts.append(ACTIVATIONS[layer.activation](Z))
        else:
            acts.append(layer._forward(acts[-1]))
    out = acts[-1]
    B = A.shape[0]
    rows = np.arange(B)
    cls = out.argmax(axis=1) if forced is None else forced
    logits = acts[_logit_layer(layers)][rows, cls].astype(np.float64)
    if seed is None:
        R = np.zeros_like(out)
        R[rows, cls] = logits
        total = logits.copy()
    else:
        R = seed.astype(out.dtype, copy=True)
        total = R.sum(axis=1, dtype=np.float64)
    if layer_out is not None:
        layer_out[L] = R
    stats = np.zeros((B, L, N_STATS))
    dense_rule = {k: r for k, r in zip(
        [k for k, l in enumerate(layers) if l.lrp == "dense"], rules)}
    # Σ R changes only at dense boundaries: the seed's sum is the logit, and a
    # boundary's sum_out is the sum_in of the one above it.
    for k in range(L - 1, -1, -1):
        stats[:, k, SUM_OUT] = total
        if k in dense_rule:
            layer = layers[k]
            if backend == "numpy":
                R, shares = reference.dense_rule(dense_rule[k], acts[k], layer.weight,
                                                 layer.bias, R, absorb_bias)
                total = R.sum(axis=1, dtype=np.float64)
            else:
                R, shares, total = dense_rule[k].batch(_cache(net), layer, acts[k],
                                                       sums[k], R, absorb_bias)
            stats[:, k, BIAS:] = shares
        stats[:, k, SUM_IN] = total
        if layer_out is not None:
            layer_out[k] = R
    return _WalkResult(R, np.asarray(cls, dtype=np.int64), logits, out, stats)


def _boundaries(layers, rules, stats):
    names = list(dict.fromkeys(r.name for r in rules))
    reason = f"no {names[0]} rule" if len(names) == 1 else "no LRP rule"
    dense = iter(rules)
    out = []
    for k, layer in enumerate(layers):
        s = stats[k]
        rule, why = {"dense": (None, None), "passthru": ("passthru", None),
                     "skip": ("SKIPPED", reason)}[layer.lrp]
        if rule is None:
            rule = next(dense).name
        out.append(Boundary(
            index=k, name=layer.name, layer=layer.describe(), rule=rule, reason=why,
            sum_in=float(s[SUM_IN]), sum_out=float(s[SUM_OUT]),
            residual=float(abs(s[SUM_IN] - s[SUM_OUT])), bias_share=float(s[BIAS]),
            stabilizer_share=float(s[STAB]), degenerate_share=float(s[DEG_SHARE]),
            degenerate=int(s[N_DEG])))
    return tuple(out)
