"""Explain Dask arrays: data sets larger than memory, on one machine or a cluster.

``pip install "lrpfast[dask]"`` (``dask[distributed]``).

:func:`explain_batch` turns a Dask array of probes into a lazy
:class:`DaskBatchExplanation`: building it computes nothing, and
``.compute()`` evaluates every field in one pass of the graph.  Each block
is explained by the in-memory :func:`lrpfast.explain_batch`, so the numbers
are the in-memory ones.  The network enters the graph once, under one key,
and so travels to each worker once, not once per task.  Explaining is a
pure function of (network, rows, keywords), so a task lost with a worker is
simply recomputed.

Works on every Dask scheduler: ``"threads"``, ``"processes"``,
``"synchronous"`` and ``dask.distributed`` (a ``Client`` makes itself the
default).
"""

from __future__ import annotations

import contextlib
import importlib
import math
import threading
from dataclasses import dataclass

import numpy as np

try:
    import dask
    import dask.array as da
    from dask.base import tokenize
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError('lrpfast.dask needs dask: pip install "lrpfast[dask]"') from None

from ._validation import (check_batch_layout, check_bool, check_class_array,
                          first_non_finite_row)
from .explain import BatchExplanation
from .network import Network

# The module, not the function that lrpfast's namespace exports under its name.
_explain = importlib.import_module(".explain", __package__)
__all__ = ["DaskBatchExplanation", "explain_batch", "importance"]

#: The fields of a result, in the order a block returns them.
FIELDS = ("relevance", "explained_class", "logits", "outputs", "stats", "max_residual")


@dataclass(frozen=True, eq=False)
class DaskBatchExplanation:
    """The lazy LRP explanation of a Dask array of ``B`` probes.

    Every field is a Dask array whose blocks follow the row blocks of the
    explained array; nothing is computed until :meth:`compute` (or until a
    field is computed, stored or persisted on its own).

    Attributes
    ----------
    relevance : dask.array.Array of shape ``(B, *net.input_shape)``
        In the network's dtype.
    explained_class : dask.array.Array of int64, shape (B,)
    logits : dask.array.Array of float64, shape (B,)
    outputs : dask.array.Array of shape ``(B, *net.output_shape)``
    stats : dask.array.Array of float64, shape (B, n_layers, 6)
    max_residual : dask.array.Array of float64, shape (B,)
    forced : bool
        Whether the classes were forced rather than the argmax.
    rule : str
        Label of the rule(s) applied.
    n_outputs : int
        The network's number of outputs (classes).
    output_relevance : dask.array.Array of shape (B, n_outputs) or None
        The top relevance given per probe, if any.
    absorb_bias : bool
    """

    relevance: object
    explained_class: object
    logits: object
    outputs: object
    stats: object
    max_residual: object
    forced: bool
    rule: str
    n_outputs: int
    _layers: tuple = ()
    _rules: tuple = ()
    output_relevance: object = None
    absorb_bias: bool = False

    def __len__(self):
        return self.relevance.shape[0]

    def arrays(self):
        """The six fields as a dict ``{name: dask array}``, in :data:`FIELDS` order."""
        return {name: getattr(self, name) for name in FIELDS}

    def compute(self, **kwargs):
        """Evaluate every field in one pass of the graph.

        Parameters
        ----------
        **kwargs
            Passed to :func:`dask.compute`, e.g. ``scheduler="processes"``.
            With a ``dask.distributed.Client`` alive, its cluster is the
            default.

        Returns
        -------
        lrpfast.BatchExplanation
            The same numbers as :func:`lrpfast.explain_batch` with the same
            keywords (see :func:`explain_batch` for the conditions of
            byte-equality).
        """
        arrays = [getattr(self, name) for name in FIELDS]
        if self.output_relevance is not None:
            arrays.append(self.output_relevance)
        if _in_this_process(kwargs.get("scheduler"), arrays):
            # Blocks written straight into the result arrays: no final
            # concatenation (a copy of every field), and no second copy in memory.
            values = [np.empty(a.shape, a.dtype) for a in arrays]
            da.store(arrays, values, lock=False, **kwargs)
        else:
            values = list(dask.compute(*arrays, **kwargs))
        seed = values.pop() if self.output_relevance is not None else None
        return BatchExplanation(
            forced=self.forced, rule=self.rule, _layers=self._layers,
            _rules=self._rules, output_relevance=seed, absorb_bias=self.absorb_bias,
            **dict(zip(FIELDS, values)))


def explain_batch(net, X, *, forced_class=None, output_relevance=None, **kwargs):
    """Explain a Dask array of probes, lazily and block by block.

    Parameters
    ----------
    net : Network
    X : dask.array.Array of shape ``(B, *net.input_shape)``
        Real numbers (ints and floats are cast to the network's dtype, as in
        memory).  Blocks run along axis 0; the other axes are rechunked to
        one chunk each.
    forced_class : None, int, array-like or dask array of B ints
        Class to explain for every probe, or one per probe (a Dask array is
        rechunked to the row blocks of ``X``).
    output_relevance : None, array-like or dask array of shape (B, n_outputs)
        One top relevance vector per probe (see :func:`lrpfast.explain`),
        rechunked like ``forced_class``.
    **kwargs
        Every other keyword of :func:`lrpfast.explain_batch` (``rule``,
        ``eps``, ``gamma``, ``alpha``, ``absorb_bias``, ``backend``,
        ``n_threads``, ``chunk_size``, ...), passed to it unchanged and
        validated now, before any block runs.  ``layers=True`` is refused
        (compute the few rows you need in memory).  For progress, use
        Dask's own bars (``dask.diagnostics.ProgressBar``,
        ``distributed.progress``).

    Returns
    -------
    DaskBatchExplanation
        Lazy; ``.compute()`` returns a :class:`lrpfast.BatchExplanation`.

    Notes
    -----
    Where BLAS runs on several threads, the blocks of one process take
    turns in the in-memory call, whose BLAS already uses the cores (Dask's
    threads still overlap reading and writing with it); where it has one
    thread (dask.distributed workers), or given ``n_threads``, they run side
    by side.  Row blocks
    are aligned to the ``chunk_size`` of the in-memory call
    (given, or its default of about 16 MB of activations): blocks that do
    not start at a multiple of it are rechunked to a multiple of it near
    their size.  Every row then meets exactly the BLAS calls it meets in
    memory, and the results are byte-equal to :func:`lrpfast.explain_batch`
    with the same keywords on a BLAS with the same number of threads (a
    matrix product's rounding can depend on its row count and on its
    threads).  ``dask.distributed`` workers run BLAS on one thread; compare
    with ``n_threads=1``.

    Examples
    --------
    >>> import dask.array as da
    >>> import lrpfast.dask as lfd
    >>> X = da.random.random((100_000, 1, 6, 6), chunks=20_000)    # doctest: +SKIP
    >>> res = lfd.explain_batch(net, X, rule="gamma")               # instant
    >>> b = res.compute()                                            # a BatchExplanation
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be a lrpfast Network, got {type(net).__name__}")
    X = _check_dask_batch(net, X)
    B = X.shape[0]
    if kwargs.get("progress", False) is not False:
        raise ValueError(
            "progress: lrpfast.dask shows no bar of its own; wrap .compute() in "
            "dask.diagnostics.ProgressBar() or use distributed.progress, got "
            f"progress={kwargs['progress']!r}")
    kwargs.pop("progress", None)
    if kwargs.get("layers", False) is not False:
        raise ValueError(
            "layers: lrpfast.dask returns no per-layer relevance; explain the rows "
            f"you need with lrpfast.explain_batch(..., layers=True), got "
            f"layers={kwargs['layers']!r}")
    kwargs.pop("layers", None)

    per_row = forced_class is not None and np.ndim(forced_class) != 0
    # Validate every keyword now (and learn the rule's label) on one zero row;
    # per-row arrays are validated below (shapes) and block by block (values).
    probe = _explain.explain_batch(
        net, np.zeros((1,) + net.input_shape, net.dtype),
        forced_class=(0 if per_row else forced_class),
        output_relevance=None if output_relevance is None else
        np.zeros((1, net.n_outputs)), **kwargs)

    rows = _aligned_rows(X.chunks[0], _explain._chunk_size(net, kwargs.get("chunk_size")))
    X = X.rechunk((rows,) + tuple(-1 for _ in net.input_shape))
    forced = _check_forced(forced_class, B, net.n_outputs, rows) if per_row else forced_class
    seed = None if output_relevance is None else \
        _check_output_relevance(output_relevance, B, net, rows)

    # The network enters the graph once, under a key named by its content: every
    # block refers to that key, so each worker receives the network once.
    net_key = dask.delayed(net, pure=True, traverse=False,
                           name=f"lrpfast-network-{_net_token(net)}")
    x_ind = "i" + "".join(chr(ord("j") + k) for k in range(len(net.input_shape)))
    forced_args = (forced, "i") if per_row else (forced, None)
    seed_args = (None, None) if seed is None else (seed, "iz")
    # First row of each block, one per block, so errors name the row of X.
    starts = da.from_array(np.cumsum((0,) + rows[:-1]), chunks=1)
    parts = da.blockwise(
        _explain_block, "i", X, x_ind, starts, "i", *forced_args, *seed_args, net_key,
        None, kwargs, None, concatenate=False, align_arrays=False, dtype=object,
        meta=np.empty((0,), dtype=object),
        name=f"lrpfast-explain-{tokenize(X, forced, seed, net_key.key, kwargs)}")

    def field(k, dtype, trailing):
        out_ind = "i" + "".join(chr(ord("s") + a) for a in range(len(trailing)))
        return da.blockwise(
            _field, out_ind, parts, "i", k, None,
            new_axes=dict(zip(out_ind[1:], trailing)), dtype=dtype,
            meta=np.empty((0,) * len(out_ind), dtype=dtype),
            name=f"lrpfast-{FIELDS[k].replace('_', '-')}-{parts.name.rsplit('-', 1)[-1]}")

    L = len(net.layers)
    return DaskBatchExplanation(
        relevance=field(0, net.dtype, net.input_shape),
        explained_class=field(1, np.int64, ()),
        logits=field(2, np.float64, ()),
        outputs=field(3, net.dtype, net.output_shape),
        stats=field(4, np.float64, (L, _explain.N_STATS)),
        max_residual=field(5, np.float64, ()),
        forced=forced_class is not None, rule=probe.rule, n_outputs=net.n_outputs,
        _layers=probe._layers, _rules=probe._rules, output_relevance=seed,
        absorb_bias=probe.absorb_bias)


def importance(result, by_class=False):
    """Global feature importance of a lazy result: mean ``|R|``, lazily.

    The same definition as ``BatchExplanation.importance``, evaluated as a
    Dask reduction (per-block sums in float64, then one division).

    Parameters
    ----------
    result : DaskBatchExplanation
    by_class : bool, default False
        Split the mean by explained class.

    Returns
    -------
    dask.array.Array of float64
        ``by_class=False``: shape ``input_shape``, the mean over the rows of
        ``|relevance|``.  ``by_class=True``: shape ``(n_outputs,
        *input_shape)``; row ``k`` is the mean of ``|relevance|`` over the
        rows whose ``explained_class`` is ``k``, and zeros for a class that
        no row explains.
    """
    if not isinstance(result, DaskBatchExplanation):
        raise TypeError("result must be a DaskBatchExplanation (from "
                        f"lrpfast.dask.explain_batch), got {type(result).__name__}")
    by_class = check_bool(by_class, "by_class")
    rel = result.relevance
    shape = rel.shape[1:]
    if not by_class:
        return da.absolute(rel.astype(np.float64)).mean(axis=0)
    K, F = result.n_outputs, math.prod(shape)
    flat = rel.reshape((rel.shape[0], F))
    # One (1, K, F + 1) partial per block: class sums of |R| and, in the last
    # column, class counts; summed over blocks, then divided.
    partial = da.blockwise(
        _class_sums, "ikf", flat, "ij", result.explained_class, "i", K, None,
        new_axes={"k": K, "f": F + 1}, adjust_chunks={"i": 1}, concatenate=True,
        dtype=np.float64, meta=np.empty((0, 0, 0)))
    total = partial.sum(axis=0)
    counts = total[:, F:]
    means = da.where(counts > 0, total[:, :F] / da.maximum(counts, 1), 0.0)
    return means.reshape((K,) + shape)


# --------------------------------------------------------------------------
# Block functions (module level: workers import them by name)
# --------------------------------------------------------------------------

def _explain_block(x, start, forced, seed, net, kwargs):
    """Explain one row block with the in-memory path; return the six fields."""
    # One chunk along every non-batch axis, handed over as nested one-element
    # lists (concatenating a single block would copy it).
    x, seed = _single(x), _single(seed)
    if x.shape[0] == 0:     # a block emptied by slicing or filtering
        return _empty_fields(net)
    turn = _BLAS_TURN if "n_threads" not in kwargs and _blas_is_threaded() \
        else contextlib.nullcontext()
    try:
        with turn:
            # Looked up at call time, so the in-memory function in use is the current one.
            b = _explain.explain_batch(net, x, forced_class=forced,
                                       output_relevance=seed, **kwargs)
    except ValueError:
        _refuse_non_finite_rows(x, int(start[0]))
        raise
    return tuple(getattr(b, name) for name in FIELDS)


#: Where BLAS runs on several threads, the blocks of one process take turns
#: in explain_batch: its BLAS already uses the cores, and two BLAS calls side
#: by side (Dask's threaded scheduler) oversubscribe them (2 threads x 2 BLAS
#: threads took 1.5-2.5x the in-memory time on 2 cores).  Dask's threads
#: still overlap reading and writing blocks with it.  Where BLAS has one
#: thread (dask.distributed workers) or ``n_threads`` is given, blocks run
#: side by side.
_BLAS_TURN = threading.Lock()


def _blas_is_threaded():
    """Whether this process's BLAS runs on more than one thread."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:     # fall back on the environment BLAS reads at start
        import os
        return not any(os.environ.get(v) == "1" for v in
                       ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"))
    return any(i.get("num_threads", 1) > 1 for i in threadpool_info()
               if i.get("user_api") == "blas")


def _refuse_non_finite_rows(x, start):
    """Raise a ValueError naming the first non-finite row of X, if there is one."""
    found = first_non_finite_row(x)
    if found is not None:
        r, kind = found
        raise ValueError(f"X contains {kind} in row {start + r} (the first bad row of the "
                         f"block of rows {start} to {start + x.shape[0] - 1}); all values "
                         "must be finite") from None


def _single(block):
    while isinstance(block, list):
        block = block[0]
    return block


def _field(part, k):
    return part[k]


def _class_sums(flat, cls, K):
    mag = np.abs(flat.astype(np.float64, copy=False))
    out = np.zeros((1, K, mag.shape[1] + 1))
    for k in np.unique(cls):
        rows = cls == k
        out[0, k, :-1] = mag[rows].sum(axis=0)
        out[0, k, -1] = rows.sum()
    return out


def _empty_fields(net):
    return (np.empty((0,) + net.input_shape, net.dtype), np.empty(0, np.int64),
            np.empty(0), np.empty((0,) + net.output_shape, net.dtype),
            np.empty((0, len(net.layers), _explain.N_STATS)), np.empty(0))


# --------------------------------------------------------------------------
# Validation and graph helpers
# --------------------------------------------------------------------------

def _in_this_process(scheduler, arrays):
    """Whether the scheduler dask.compute would use runs the tasks in this process."""
    import dask.local
    import dask.threaded

    try:
        get = dask.base.get_scheduler(scheduler=scheduler, collections=arrays)
    except Exception:       # let dask.compute report a bad scheduler
        return False
    return get in (dask.threaded.get, dask.local.get_sync)


def _check_dask_batch(net, X):
    if not isinstance(X, da.Array):
        raise TypeError(
            f"X must be a dask array of shape (B, {', '.join(map(str, net.input_shape))}), "
            f"got {type(X).__name__}; wrap in-memory data with dask.array.from_array, or "
            "call lrpfast.explain_batch")
    # (with unknown chunk sizes B is NaN: not empty, refused just below)
    check_batch_layout("X", X.dtype, X.shape, net.input_shape)
    if any(math.isnan(c) for c in X.chunks[0]):
        raise ValueError("X has unknown chunk sizes along axis 0; call "
                         "X.compute_chunk_sizes() first")
    return X


def _aligned_rows(chunks, step):
    """Row chunks whose starts are multiples of ``step`` (the in-memory chunk).

    Chunks already aligned are kept; otherwise every block gets the multiple
    of ``step`` nearest the original blocks' typical size (at least ``step``).
    """
    starts = np.cumsum((0,) + tuple(chunks[:-1]))
    if not (starts % step).any():
        return tuple(chunks)
    size = step * max(1, round(max(chunks) / step))
    B = int(sum(chunks))
    return (size,) * (B // size) + ((B % size,) if B % size else ())


def _check_forced(forced_class, B, n_classes, rows):
    """A per-row forced_class as a dask array chunked like the row blocks."""
    if isinstance(forced_class, da.Array):
        # Values are range-checked block by block by explain_batch.
        check_class_array(forced_class, "forced_class", B, n_classes, check_values=False)
        return forced_class.rechunk((rows,))
    arr = check_class_array(forced_class, "forced_class", B, n_classes)
    return da.from_array(arr, chunks=(rows,))


def _check_output_relevance(output_relevance, B, net, rows):
    """A per-row output_relevance as a dask array chunked like the row blocks."""
    shape = (B, net.n_outputs)
    if not isinstance(output_relevance, da.Array):
        arr = _explain._check_seed(net, output_relevance, None, B)
        return da.from_array(arr, chunks=(rows, -1))
    if output_relevance.shape != shape or output_relevance.dtype.kind not in "biuf":
        raise ValueError(
            f"output_relevance must be an array of real numbers of shape {shape} (one "
            f"row of n_outputs values per probe), got dtype {output_relevance.dtype} and "
            f"shape {output_relevance.shape}")
    # Values are checked block by block by explain_batch.
    return output_relevance.astype(net.dtype).rechunk((rows, -1))


def _net_token(net):
    """A content hash of the network (layers, configs, parameter bytes)."""
    return tokenize(net.input_shape, net.dtype.str,
                    [(type(layer).__name__, layer.get_config(), layer.params())
                     for layer in net.layers])
