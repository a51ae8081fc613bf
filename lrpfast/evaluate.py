"""Faithfulness of explanations: pixel flipping, AOPC and a rule comparison.

A heatmap is faithful when removing the features it ranks highest hurts the
prediction more than removing random ones (Bach et al. 2015; Samek et al.
2017, "Evaluating the visualization of what a deep neural network has
learned").  :func:`pixel_flipping` replaces features by a baseline, a few at
a time in the order a relevance map gives, and records the score of the
explained class after each step; :func:`compare_rules` does it for several
LRP rules and prints which one the model's own predictions support best.

Definitions (``B`` probes, ``n`` features, ``T`` steps):

- ``curves[:, t]`` is the score after ``t`` steps; column 0 is the
  unperturbed probe.
- ``fraction[t]`` is the share of the ``n`` features replaced after ``t`` steps.
- ``aopc = mean over t = 0..T of (curves[:, 0] - curves[:, t])``, the
  *area over the perturbation curve* of Samek et al. (2017).
- ``auc`` is the trapezoid area under ``curves`` over ``fraction``.

Speed: every step of every probe in a chunk is one batched forward.  When the
first layer is Dense, its pre-activation ``Z1 = X @ W1 + b1`` is kept in
float64 and updated by the rank-k change of a step,
``ΔZ1 = (baseline − x)[sel] @ W1[sel]``, so only the layers above it are
recomputed (the first layer of a 784-256-256-10 net is 3/4 of its work).
"""

from __future__ import annotations

import math
import numbers
import textwrap
from dataclasses import dataclass, field, replace

import numpy as np

from . import _flip
from ._progress import progress_bar
from ._validation import (as_float_array, check_bool, check_choice, check_class_array,
                          check_int, check_rng)
from .explain import BatchExplanation, _head_end, _logit_layer, explain_batch
from .layers import ACTIVATIONS
from .network import Network

__all__ = ["FlipResult", "RuleComparison", "compare_rules", "pixel_flipping",
           "ORDERS", "SCORES", "DEFAULT_RULES"]

ORDERS = ("morf", "lerf", "random")
SCORES = ("probability", "logit")
DEFAULT_RULES = ("epsilon", "gamma", "alpha-beta")

# The rank-k update of the first layer pays when a step changes at most this
# share of the features; otherwise each step recomputes the whole network.
_UPDATE_MAX_SHARE = 1 / 8
# Bytes of work arrays per chunk when chunk_size is None.
_CHUNK_BYTES = 16 << 20


@dataclass(frozen=True, eq=False)
class FlipResult:
    """Pixel-flipping curves of ``B`` probes and their summaries.

    Attributes
    ----------
    curves : ndarray of float64, shape (B, T + 1)
        Score of the target class after ``t`` steps; column 0 is the
        unperturbed probe.
    fraction : ndarray of float64, shape (T + 1,)
        Share of the input features replaced after ``t`` steps
        (``fraction[0] == 0``).
    aopc : ndarray of float64, shape (B,)
        ``mean over t = 0..T of (curves[:, 0] - curves[:, t])``.
    auc : ndarray of float64, shape (B,)
        Trapezoid area under each curve over ``fraction``.
    order : str
        ``"morf"``, ``"lerf"`` or ``"random"``.
    score : str
        ``"probability"`` or ``"logit"``.
    label : str
        The rule label when the relevance came from a
        :class:`~lrpfast.BatchExplanation` (e.g. ``"epsilon-rule (eps=0.01)"``),
        else ``""``.
    target : ndarray of int64, shape (B,)
        The class whose score the curves follow.
    features_per_step : int
        Features (or tiles, with ``region``) replaced per step.
    region : tuple of int or None
        The ``(h, w)`` tile size, or None for single features.
    """

    curves: np.ndarray
    fraction: np.ndarray
    aopc: np.ndarray
    auc: np.ndarray
    order: str
    score: str
    label: str = ""
    target: np.ndarray = field(default=None, repr=False)
    features_per_step: int = 1
    region: tuple | None = None

    @property
    def mean_curve(self):
        """``curves.mean(axis=0)``, shape (T + 1,)."""
        return self.curves.mean(axis=0)

    @property
    def steps(self):
        """The number of steps ``T``."""
        return self.curves.shape[1] - 1

    def __len__(self):
        return self.curves.shape[0]

    def __repr__(self):
        lab = f" {self.label!r}" if self.label else ""
        return (f"FlipResult({self.order}{lab}, {self.score}, {len(self)} probes, "
                f"{self.steps} steps, mean AOPC {self.aopc.mean():.4f})")


# --------------------------------------------------------------------------
# pixel_flipping
# --------------------------------------------------------------------------

def pixel_flipping(net, X, relevance, *, order="morf", features_per_step=1, steps=None,
                   baseline=0.0, score="probability", target=None, seed=0, region=None,
                   chunk_size=None, progress=False):
    """Pixel-flipping curves: replace features in relevance order, track the score.

    Each step replaces the next ``features_per_step`` features of a probe (in
    the order its relevance gives) by the baseline, cumulatively, and records
    the score of the target class (Bach et al. 2015; Samek et al. 2017).

    Parameters
    ----------
    net : Network
    X : array-like of shape ``(B, *net.input_shape)`` or ``net.input_shape``
        The probes (one probe counts as ``B = 1``).
    relevance : array-like of X's shape, or BatchExplanation
        Signed relevance per input feature.  A
        :class:`~lrpfast.BatchExplanation` of ``X`` also gives the label and,
        with ``target=None``, the explained classes.
    order : {"morf", "lerf", "random"}, default "morf"
        ``"morf"``: most relevant first, by descending *signed* relevance;
        ``"lerf"``: least relevant first (ascending); ties go to the lower
        flat index in both.  ``"random"``: a seeded random permutation per
        probe (the relevance is not used).
    features_per_step : int, default 1
        Features replaced per step (tiles, with ``region``), >= 1.
    steps : int or None
        At most this many steps (>= 1); None runs until every feature is
        replaced: ``T = ceil(n / features_per_step)``.
    baseline : float, array-like of shape ``net.input_shape``, or "mean"
        The value a replaced feature takes; ``"mean"`` is the per-feature
        mean of ``X``.
    score : {"probability", "logit"}, default "probability"
        ``"probability"``: the network's output for the target when it ends
        in a SoftMax or sigmoid, else the softmax of the outputs (the sigmoid
        for a single output).  ``"logit"``: the input of a trailing SoftMax
        or Sigmoid layer, else the output (the value LRP seeds with).
    target : None, int or array-like of B ints
        The class to follow; None follows each probe's argmax on the
        unperturbed probe (or the explained class of a BatchExplanation).
    seed : int or numpy.random.Generator, default 0
        Source of the random order.  A probe's permutation depends on its
        position in ``X`` only, never on ``chunk_size``.
    region : tuple (h, w) or None
        Perturb non-overlapping ``h x w`` tiles (all channels together)
        instead of single features, ranked by their summed relevance.  Needs
        an image-like ``(C, H, W)`` input that the tiles cover exactly.
    chunk_size : int or None
        Probes per chunk (None: about 16 MB of work arrays per chunk); bounds
        the memory for any ``B``.  Results do not depend on it (up to the
        rounding of BLAS, which may differ between batch sizes).
    progress : bool, default False
        Show a tqdm progress bar on stderr, updated once per chunk (needs
        ``pip install "lrpfast[progress]"``).

    Returns
    -------
    FlipResult

    Examples
    --------
    >>> import lrpfast as lf
    >>> net = lf.Network((1, 6, 6), [lf.Dense(16, "relu"), lf.Dense(2), lf.SoftMax()],
    ...                  seed=0)
    >>> X, y = lf.datasets.blobs(64, noise=0.1, seed=0)
    >>> b = lf.explain_batch(net, X, rule="epsilon")
    >>> res = lf.evaluate.pixel_flipping(net, X, b, order="morf")
    >>> res.curves.shape, float(res.fraction[1])
    ((64, 37), 0.027777777777777776)
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be a lrpfast Network, got {type(net).__name__}")
    A, single = net._as_batch(X, "X")
    B, n = A.shape
    label, expl_target = "", None
    if isinstance(relevance, BatchExplanation):
        label = relevance.rule
        R = relevance.relevance
        if R.shape != (B,) + net.input_shape:
            raise ValueError(
                f"relevance: the BatchExplanation holds {R.shape[0]} probes of shape "
                f"{R.shape[1:]}, X has {B} of shape {net.input_shape}")
        expl_target = np.asarray(relevance.explained_class, dtype=np.int64)
        R = R.reshape(B, n)
    else:
        want = net.input_shape if single else (B,) + net.input_shape
        # float32 relevance stays float32 (no copy of a large batch); the
        # order is the same in float64, to which each chunk is converted.
        kind = getattr(relevance, "dtype", None)
        R = as_float_array(relevance, "relevance",
                           np.float32 if kind == np.float32 else np.float64)
        if R.shape != want:
            raise ValueError(f"relevance must have X's shape {want}, got {R.shape}")
        R = R.reshape(B, n)
    order = check_choice(order, "order", ORDERS)
    score = check_choice(score, "score", SCORES)
    k = check_int(features_per_step, "features_per_step", low=1)
    if steps is not None:
        steps = check_int(steps, "steps", low=1)
    base = _check_baseline(baseline, net, A)
    tgt = check_class_array(target, "target", B, net.n_outputs)
    if tgt is None:
        tgt = expl_target
    rng = check_rng(seed, allow_none=False)
    tiles = _tiles(region, net.input_shape)
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", low=1)
    progress = check_bool(progress, "progress")

    # Units are what a step removes: features, or tiles of features.
    n_units, per_unit = (n, 1) if tiles is None else tiles.shape
    T = math.ceil(n_units / k)
    if steps is not None:
        T = min(T, steps)
    bounds = np.minimum(np.arange(T + 1) * (k * per_unit), n)   # features replaced
    fraction = bounds / n

    engine = _Engine(net, score)
    if chunk_size is None:
        # per probe: relevance, keys, orders, deltas (float64/intp) and the
        # activations of the widest layer
        row = n * (A.itemsize + 48) + engine.width * 24 + (T + 1) * 8
        chunk_size = max(1, _CHUNK_BYTES // row)
    curves = np.empty((B, T + 1))
    target_out = np.empty(B, dtype=np.int64)
    with progress_bar(progress, B, "flip", "row") as bar, \
            np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for lo in range(0, B, chunk_size):
            hi = min(B, lo + chunk_size)
            Rc = R[lo:hi].astype(np.float64)
            units = Rc if tiles is None else Rc[:, tiles].sum(axis=2)   # (b, n_tiles)
            uorder = _order(units, order, rng)
            forder = uorder if tiles is None else tiles[uorder].reshape(hi - lo, -1)
            curves[lo:hi], target_out[lo:hi] = engine.curves(
                A[lo:hi], base, forder, bounds, None if tgt is None else tgt[lo:hi])
            bar.update(hi - lo)
    if not np.isfinite(curves).all():
        raise ValueError(
            f"X: the network's outputs overflow {net.dtype.name} on the perturbed "
            "probes (non-finite scores); scale the input down or use a float64 network")
    aopc = curves[:, :1] - curves
    aopc = aopc.mean(axis=1)
    auc = (0.5 * (curves[:, 1:] + curves[:, :-1]) * np.diff(fraction)).sum(axis=1)
    return FlipResult(curves=curves, fraction=fraction, aopc=aopc, auc=auc, order=order,
                      score=score, label=label, target=target_out, features_per_step=k,
                      region=None if tiles is None else tuple(region))


def _check_baseline(baseline, net, A):
    """The baseline as a flat (n,) array in the network's dtype."""
    n = A.shape[1]
    if isinstance(baseline, str):
        if baseline != "mean":
            raise ValueError(
                f"baseline must be a number, an array of shape {net.input_shape} or "
                f"'mean', got {baseline!r}")
        return A.mean(axis=0, dtype=np.float64).astype(net.dtype)
    if isinstance(baseline, numbers.Real) and not isinstance(baseline, bool):
        arr = as_float_array(baseline, "baseline", net.dtype)
        return np.full(n, arr, dtype=net.dtype)
    if isinstance(baseline, bool) or baseline is None:
        raise TypeError(
            f"baseline must be a number, an array of shape {net.input_shape} or 'mean', "
            f"got {baseline!r}")
    arr = as_float_array(baseline, "baseline", net.dtype)
    if arr.shape != net.input_shape:
        raise ValueError(
            f"baseline must be a number, 'mean' or an array of the input shape "
            f"{net.input_shape}, got an array of shape {arr.shape}")
    return arr.reshape(n)


def _tiles(region, input_shape):
    """Flat feature indices of each tile, shape (n_tiles, C*h*w), or None."""
    if region is None:
        return None
    if isinstance(region, (str, bytes)) or not hasattr(region, "__len__") \
            or len(region) != 2:
        raise TypeError(f"region must be a pair (h, w) of ints or None, got {region!r}")
    h = check_int(region[0], "region[0] (tile height)", low=1)
    w = check_int(region[1], "region[1] (tile width)", low=1)
    if len(input_shape) != 3:
        raise ValueError(
            f"region needs image-like input of shape (C, H, W); this network's input "
            f"shape is {input_shape}")
    C, H, W = input_shape
    if H % h or W % w:
        raise ValueError(
            f"region ({h}, {w}) does not tile the input: H={H}, W={W} must be "
            f"multiples of h, w")
    idx = np.arange(C * H * W).reshape(C, H // h, h, W // w, w)
    # tile (ty, tx) in C order; inside a tile, features in flat order
    return np.ascontiguousarray(idx.transpose(1, 3, 0, 2, 4).reshape(
        (H // h) * (W // w), C * h * w))


def _order(units, order, rng):
    """Per-row permutation of the units (ties to the lower index)."""
    if order == "random":
        # Uniform keys drawn row by row: a row's permutation does not depend
        # on how the rows are chunked.
        keys = rng.random(units.shape)
    else:
        keys = -units if order == "morf" else units
    # The default sort is twice as fast as the stable one; it can only differ
    # on rows with tied keys, and those are sorted again, stably.
    idx = np.argsort(keys, axis=1)
    ranked = np.take_along_axis(keys, idx, axis=1)
    tied = (ranked[:, 1:] == ranked[:, :-1]).any(axis=1)
    if tied.any():
        idx[tied] = np.argsort(keys[tied], axis=1, kind="stable")
    return idx


class _Engine:
    """Scores of a chunk of probes along their flipping sequence."""

    def __init__(self, net, score):
        self.net = net
        self.score = score
        layers = net.layers
        self.k_logit = _logit_layer(layers)
        k0 = 0
        while k0 < len(layers) and layers[k0]._op == "alias":
            k0 += 1                                     # no-ops on flat data
        self.first = layers[k0] if k0 < len(layers) and layers[k0]._op == "dense" else None
        self.k0 = k0
        self.width = max([l.n_out for l in layers] + [net.n_inputs])
        # How the probability is read: from the network's own head, or by
        # applying softmax/sigmoid to the outputs.
        k_head = _head_end(layers)
        head = layers[k_head - 1] if k_head else None
        if self.k_logit < len(layers):
            self.prob = "output"                        # SoftMax / Sigmoid layer
        elif head is not None and getattr(head, "activation", None) == "sigmoid":
            self.prob = "output"
        elif net.n_outputs == 1:
            self.prob = "sigmoid"
        else:
            self.prob = "softmax"

    def curves(self, X, base, forder, bounds, target):
        """``(curves (b, T+1), target (b,))`` for the probes ``X`` (b, n)."""
        b = X.shape[0]
        T = len(bounds) - 1
        out = np.empty((b, T + 1))
        largest = int(np.diff(bounds).max()) if T else 0
        update = self.first is not None and largest <= _UPDATE_MAX_SHARE * X.shape[1]
        rows = np.arange(b)
        if update:
            W, bias = self.first.weight, self.first.bias
            # Z1 in float64: the running sum of rank-k updates stays exact to
            # float64 rounding, tighter than a float32 recomputation.
            # The start is computed as a forward computes it; the steps are
            # then exact in float64.
            Z = (X @ W).astype(np.float64, copy=False)
            Z += bias
            A1 = np.empty(Z.shape, dtype=self.net.dtype)
            # exact in float64 (a float32 difference would round)
            delta = base.astype(np.float64)[forder]
            delta -= np.take_along_axis(X, forder, axis=1)
        else:
            cur = X.copy()
        for t in range(T + 1):
            if update:
                if t:
                    lo, hi = bounds[t - 1], bounds[t]
                    # ΔZ1 = (baseline - x)[sel] @ W1[sel] per probe, sel = forder[:, lo:hi]
                    _flip.rank_update(Z, W, forder, delta, lo, hi)
                logits, output = self._above_first(Z, A1)
            else:
                if t:
                    sel = forder[:, bounds[t - 1]:bounds[t]]
                    np.put_along_axis(cur, sel, base[sel], axis=1)
                logits, output = self._forward(cur, 0)
            if t == 0 and target is None:
                target = output.argmax(axis=1)
            out[:, t] = self._score(logits, output, rows, target)
        return out, target

    def _above_first(self, Z, A1):
        """Forward from the first Dense layer's float64 pre-activation ``Z``.

        ``A1`` is a buffer of Z's shape in the network's dtype.
        """
        act = self.first.activation
        if act == "relu":
            np.maximum(Z, 0, out=A1, casting="same_kind")    # a1 = relu(z1), cast
        else:
            A1[...] = Z
            A1 = ACTIVATIONS[act](A1)
        return self._forward(A1, self.k0 + 1)

    def _forward(self, A, start):
        """Run layers ``start..`` on ``A``; return ``(logits, output)``."""
        layers = self.net.layers
        logits = A if self.k_logit <= start else None
        for k in range(start, len(layers)):
            layer = layers[k]
            if layer._op == "dense":
                # as Dense._forward, with the bias and a ReLU applied in place
                Z = A @ layer.weight
                Z += layer.bias
                A = np.maximum(Z, 0, out=Z) if layer.activation == "relu" else \
                    ACTIVATIONS[layer.activation](Z)
            else:
                A = layer._forward(A)
            if k + 1 == self.k_logit:
                logits = A
        return logits, A

    def _score(self, logits, output, rows, target):
        if self.score == "logit":
            return logits[rows, target]
        if self.prob == "output":
            return output[rows, target]
        z = output.astype(np.float64)
        if self.prob == "sigmoid":
            return 1.0 / (1.0 + np.exp(-z[rows, target]))
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e[rows, target] / e.sum(axis=1)


# --------------------------------------------------------------------------
# compare_rules
# --------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class RuleComparison:
    """MoRF, LeRF and random pixel flipping for several rules on the same probes.

    Attributes
    ----------
    labels : list of str
        Rule labels, in the order given.
    morf, lerf, random : dict of str to FlipResult
        Per label.  The random order does not use the relevance, so every
        label shares the same random curves (computed once).
    best : str
        The label with the largest mean ``MoRF AOPC − LeRF AOPC``: a faithful
        ranking puts the decisive features first *and* the useless ones last,
        while MoRF alone also rewards any removal that pushes the probe off
        its data distribution.
    n_probes : int
    settings : str
        The options, as printed above the table.
    """

    labels: list
    morf: dict
    lerf: dict
    random: dict
    best: str
    n_probes: int
    settings: str = ""

    def gap(self, label):
        """Per-probe ``MoRF AOPC − LeRF AOPC`` of ``label``, shape (B,)."""
        return self.morf[label].aopc - self.lerf[label].aopc

    def table(self):
        """The comparison as text (at most 100 columns), best rule marked ``*``."""
        lw = min(44, max(len("rule"), *(len(l) for l in self.labels)))
        head = (f"  {'rule':<{lw}} {'MoRF AOPC':>10} {'LeRF AOPC':>10} "
                f"{'random AOPC':>11} {'MoRF-LeRF':>10} {'s.e.':>7}")
        lines = [f"Pixel flipping on {self.n_probes} probes: {self.settings}", head,
                 "  " + "-" * (len(head) - 2)]
        for lab in self.labels:
            g = self.gap(lab)
            se = g.std(ddof=1) / math.sqrt(len(g)) if len(g) > 1 else float("nan")
            # long (composite) labels wrap onto lines of their own below the numbers
            name = _wrap_label(lab, lw)
            mark = "*" if lab == self.best else " "
            lines.append(
                f"{mark} {name[0]:<{lw}} {self.morf[lab].aopc.mean():>10.4f} "
                f"{self.lerf[lab].aopc.mean():>10.4f} {self.random[lab].aopc.mean():>11.4f} "
                f"{g.mean():>10.4f} {se:>7.4f}")
            lines += [f"  {rest}" for rest in name[1:]]
        lines += ["* = best: the largest MoRF - LeRF (decisive features first, useless "
                  "ones last).",
                  "  AOPC = mean drop of the score along the curve; s.e. = standard error "
                  "of MoRF - LeRF;",
                  "  the random order ignores the relevance (the same for every rule)."]
        tied = [lab.split(" (")[0] for lab in self.labels
                if np.array_equal(self.morf[lab].curves, self.lerf[lab].curves)]
        if tied:
            its = "its" if len(tied) == 1 else "their"
            lines += textwrap.wrap(
                f"MoRF = LeRF for {', '.join(tied)}: {its} relevance ties (e.g. a flat "
                f"layer) and ties are broken by flat index, so {its} MoRF - LeRF gap says "
                "nothing.", 100, initial_indent="  ", subsequent_indent="  ")
        return "\n".join(lines)

    def __str__(self):
        return self.table()


def _wrap_label(label, width):
    """Lines of at most ``width`` for a rule label, broken between the layers
    of a composite (``" / "``) where possible."""
    parts = label.split(" / ")
    lines = [parts[0]]
    for part in parts[1:]:
        if len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " / " + part
        else:
            lines.append("  / " + part)
    return [piece for line in lines
            for piece in textwrap.wrap(line, width, subsequent_indent="    ")]


def compare_rules(net, X, rules=DEFAULT_RULES, *, eps=1e-2, gamma=0.25, alpha=2.0,
                  absorb_bias=False, **options):
    """Explain ``X`` under each rule and compare their faithfulness.

    Each rule's relevance is scored by MoRF and LeRF pixel flipping, and all
    of them against the same random order (:func:`pixel_flipping`).

    Parameters
    ----------
    net : Network
    X : array-like of shape ``(B, *net.input_shape)``
    rules : sequence, default ("epsilon", "gamma", "alpha-beta")
        One entry per rule to compare: a name, a rule object, or a list with
        one rule per Dense layer (a composite).  A single name or object is
        one rule.
    eps, gamma, alpha, absorb_bias
        Parameters of the rules given by name, as in :func:`~lrpfast.explain_batch`.
    **options
        ``features_per_step``, ``steps``, ``baseline``, ``score``, ``target``,
        ``seed``, ``region``, ``chunk_size``, ``progress``: as in
        :func:`pixel_flipping` (``progress`` shows one bar per curve).
        ``target`` is also the class explained (``forced_class``).

    Returns
    -------
    RuleComparison
        ``print(result)`` prints its table.
    """
    allowed = {"features_per_step", "steps", "baseline", "score", "target", "seed",
               "region", "chunk_size", "progress"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(f"compare_rules got unknown option(s) {', '.join(unknown)}; "
                        f"accepted: {', '.join(sorted(allowed))}")
    if isinstance(rules, str) or not isinstance(rules, (list, tuple)):
        rules = [rules]
    if len(rules) == 0:
        raise ValueError("rules must name at least one rule, got an empty list")
    target = options.get("target")
    if not isinstance(net, Network):
        raise TypeError(f"net must be a lrpfast Network, got {type(net).__name__}")
    B = net._as_batch(X, "X")[0].shape[0]
    forced = check_class_array(target, "target", B, net.n_outputs)
    exps = [explain_batch(net, X, rule=r, eps=eps, gamma=gamma, alpha=alpha,
                          forced_class=forced, absorb_bias=absorb_bias) for r in rules]
    labels = [e.rule for e in exps]
    dup = sorted({l for l in labels if labels.count(l) > 1})
    if dup:
        raise ValueError(f"rules: two entries give the same rule {dup[0]!r}; "
                         "compare each rule once")
    morf = {e.rule: pixel_flipping(net, X, e, order="morf", **options) for e in exps}
    lerf = {e.rule: pixel_flipping(net, X, e, order="lerf", **options) for e in exps}
    rnd = pixel_flipping(net, X, exps[0], order="random", **options)
    random = {l: replace(rnd, label=l) for l in labels}
    best = max(labels, key=lambda l: (morf[l].aopc - lerf[l].aopc).mean())
    return RuleComparison(labels=labels, morf=morf, lerf=lerf, random=random, best=best,
                          n_probes=B, settings=_settings(rnd, options))


def _settings(res, options):
    k = res.features_per_step
    what = "tile" if res.region else "feature"
    unit = f"{k} {what}{'s' if k > 1 else ''}" + (
        f" ({res.region[0]}x{res.region[1]})" if res.region else "")
    base = options.get("baseline", 0.0)
    base = base if isinstance(base, str) else (
        f"{float(base):g}" if isinstance(base, numbers.Real) else "array")
    return f"{res.score}, {unit} per step, {res.steps} steps, baseline {base}"
