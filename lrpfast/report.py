"""lrp_report(): the seed's LRPReport as text, and the pieces it is made of.

The report explains one probe and prints, in order:

* a header: ``LRPReport``, the rule with its parameters, the explained class
  (argmax or forced), its logit, and its probability when the network ends
  in a SoftMax;
* **(a)** the conservation table, one row per layer boundary from the output
  to the input, then ``Max conservation residual = ...`` and a verdict;
* **(b)** the top-K most relevant input positions;
* **(c)** ASCII heatmaps of ``|R|`` and of the sign of ``R``, one per channel
  (one row for tabular inputs);
* the SKIPPED layers and why.

The verdict
-----------
At every boundary ``Σ R_out − Σ R_in`` is the sum of three shares that the
kernels compute separately (DESIGN §3): the relevance absorbed by the bias,
by the stabiliser, and lost (or gained) at degenerate neurons.  Each rule
promises which shares may be non-zero:

=====================  ===============================================
boundary               shares the rule allows
=====================  ===============================================
passthru, SKIPPED      none: ``R_in = R_out``
epsilon, gamma         stabiliser (bounded by ``Σ_j |R_j|·eps/(|d_j|+eps)``
                       by construction); bias too with ``absorb_bias``
alpha-beta             degenerate neurons; bias too with ``absorb_bias``
                       (so 0 in default mode without degenerate neurons)
=====================  ===============================================

A boundary is *healthy* when its residual is accounted for by the allowed
shares to rounding::

    |(Σ R_out − Σ R_in) − Σ allowed shares|  <=  sqrt(eps_mach) · scale

where ``eps_mach`` is the machine epsilon of the network's dtype (so the
tolerance is about 3.5e-4 relative in float32 and 1.5e-8 in float64) and
``scale = max(|Σ R_out|, |Σ R_in|, |bias|, |stabiliser|, |degenerate|,
|logit|)``.  In particular ``residual <= Σ |allowed shares| + tolerance``.
The report is healthy when every boundary is; otherwise the verdict names the
first boundary (from the output) that is not.  :func:`check_conservation`
gives the same verdict as data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import check_int
from .explain import explain

__all__ = ["RAMP", "Verdict", "ascii_probe", "bucket_map", "check_conservation",
           "format_position", "heatmap_lines", "lrp_report", "render_report",
           "sign_map", "top_positions"]

#: The 10 intensity buckets, lowest to highest ``|R|``.
RAMP = " .:-=+*#%@"

# Shares each boundary rule may use (absorb_bias adds "bias" to dense rules).
_ALLOWED = {
    "passthru": (),
    "SKIPPED": (),
    "epsilon": ("stabilizer",),
    "gamma": ("stabilizer",),
    "alpha-beta": ("degenerate",),
}
_SHARE_NAMES = {"bias": "bias", "stabilizer": "stabiliser", "degenerate": "degenerate"}


# ---------------------------------------------------------------------------
# Positions and rankings.
# ---------------------------------------------------------------------------

def format_position(flat, input_shape):
    """Print a flat input index as the reader knows the input.

    Parameters
    ----------
    flat : int
        C-order flat index into a probe of ``input_shape``.
    input_shape : tuple
        Any rank.

    Returns
    -------
    str
        - rank 1 ``(n,)``: ``"feature i"`` (tabular inputs, as before);
        - rank 3 ``(C, H, W)``: ``"(c, x, y)"`` with ``flat = (c*H + y)*W + x``
          (x is the column, as in the seed);
        - any other rank: the NumPy index ``"[i, j, ...]"``, so that
          ``probe[i, j, ...]`` is the position (e.g. time step and feature of
          a ``(T, F)`` window).
    """
    if len(input_shape) == 1:
        return f"feature {int(flat)}"
    index = np.unravel_index(int(flat), tuple(input_shape))
    if len(input_shape) == 3:
        c, y, x = index
        return f"({c}, {x}, {y})"
    return "[" + ", ".join(str(int(i)) for i in index) + "]"


def _position_label(input_shape):
    """What the top-K table ranks, as :func:`format_position` prints it."""
    return {1: "features", 3: "positions (channel, x, y)"}.get(
        len(input_shape), "positions [" + ", ".join("ijklmn"[:len(input_shape)]) + "]"
        if len(input_shape) <= 6 else "positions [numpy index]")


def top_positions(relevance, top_k):
    """The ``top_k`` entries of largest ``|R|``; ties go to the lower flat index.

    Parameters
    ----------
    relevance : ndarray
        Any shape; ranked in C-order flat indexing.
    top_k : int
        >= 1; clipped to ``relevance.size``.

    Returns
    -------
    list of (int, float, float)
        ``(flat index, signed relevance, share of Σ|R|)`` by rank.
    """
    top_k = check_int(top_k, "top_k", low=1)
    r = np.asarray(relevance, dtype=np.float64).ravel()
    # A stable sort of -|R| keeps equal |R| in increasing flat order.
    order = np.argsort(-np.abs(r), kind="stable")[:top_k]
    total = np.abs(r).sum()
    return [(int(i), float(r[i]), float(abs(r[i]) / total) if total > 0 else 0.0)
            for i in order]


# ---------------------------------------------------------------------------
# ASCII maps.
# ---------------------------------------------------------------------------

def bucket_map(values):
    """Intensity buckets ``round(9·|v| / max|v|)`` in 0..9 (all 0 if max is 0).

    Rounding is NumPy's ``rint`` (half to even), on float64.
    """
    a = np.abs(np.asarray(values, dtype=np.float64))
    peak = a.max() if a.size else 0.0
    if peak == 0:
        return np.zeros(a.shape, dtype=np.int64)
    return np.rint(9.0 * a / peak).astype(np.int64)


def sign_map(values):
    """``'+'`` where ``v > 0``, ``'-'`` where ``v < 0``, ``' '`` where ``v == 0``."""
    v = np.asarray(values)
    return np.where(v > 0, "+", np.where(v < 0, "-", " "))


def _planes(values, input_shape):
    """``values`` as a list of 2-D planes: one per channel (rank 3), the map
    itself (rank 2) or one row (rank 1).  Other ranks are not drawn."""
    v = np.asarray(values).reshape(input_shape)
    if len(input_shape) == 1:
        return [v.reshape(1, -1)]
    if len(input_shape) == 2:
        return [v]
    return list(v)


def heatmap_lines(values, input_shape, *, titles=("|R|", "sign"), sign=True,
                  indent="  "):
    """ASCII heatmaps of ``values``, ``|v|`` and sign side by side.

    Buckets come from :func:`bucket_map` over the *whole* input (so channels
    share one scale) and are drawn with :data:`RAMP`; ``@`` marks the largest
    ``|v|``.  Cells are framed by ``|`` so blank cells stay visible.

    Parameters
    ----------
    values : ndarray
        Anything of ``input_shape`` (relevance, or a probe).
    input_shape : tuple
        ``(n,)`` is drawn as one row; ``(H, W)`` as one map with rows ``i``
        and columns ``j`` (the NumPy index ``[i, j]``); ``(C, H, W)`` as one
        map per channel.  Other ranks have no map: one line says so.
    titles : tuple of str
        Titles of the magnitude and sign maps.
    sign : bool, default True
        Draw the sign map beside the magnitude map.

    Returns
    -------
    list of str
    """
    rank = len(input_shape)
    if rank not in (1, 2, 3):
        return [f"{indent}(no map: inputs of rank {rank}, shape {tuple(input_shape)}, "
                "are not drawn; the top-K table lists the positions)"]
    buckets = _planes(bucket_map(values), input_shape)
    signs = _planes(sign_map(values), input_shape)
    # label of the map, of the x axis, and of row y
    label, xaxis, ylab = {1: ("features", "i mod 10", lambda y: ""),
                          2: ("map [i, j]", "j ->", lambda y: f"i = {y}"),
                          3: (None, "x ->", lambda y: f"y = {y}")}[rank]
    lines = []
    # Column layout: a 10-character label field, then "|cells|", then
    # "   |signs|"; titles and the x axis line up with the cells.
    for c, (bp, sp) in enumerate(zip(buckets, signs)):
        W = bp.shape[1]
        cols = "".join(str(x % 10) for x in range(W))
        head = f"{indent}{label or f'channel {c}':<11}{titles[0]:<{W + 5}}"
        if sign:
            head += titles[1]
        lines.append(head.rstrip())
        axis = f"{indent}{xaxis:>8}   {cols}"
        if sign:
            axis += f"     {cols}"
        lines.append(axis)
        for y in range(bp.shape[0]):
            row = f"{indent}{ylab(y):>8}  |{''.join(RAMP[b] for b in bp[y])}|"
            if sign:
                row += f"   |{''.join(sp[y])}|"
            lines.append(row)
    return lines


def ascii_probe(x, input_shape=None, *, title="input"):
    """Draw a probe (or any array) in the 10 buckets of :data:`RAMP`.

    Parameters
    ----------
    x : array-like
        The probe; ``|x|`` is drawn, scaled to its maximum.
    input_shape : tuple, optional
        Defaults to ``x.shape``.
    title : str

    Returns
    -------
    str
    """
    x = np.asarray(x, dtype=np.float64)
    shape = tuple(input_shape) if input_shape is not None else x.shape
    peak = float(np.abs(x).max()) if x.size else 0.0
    lines = [f"{title}: |x| in buckets \"{RAMP}\", '@' = max|x| = {peak:.3g}"]
    lines += heatmap_lines(x, shape, titles=("|x|", "sign"), sign=False)
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Conservation verdict.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    """Outcome of :func:`check_conservation`.

    Attributes
    ----------
    healthy : bool
    boundary : int or None
        Index (in ``net.layers``) of the first flagged boundary, from the
        output side; None when healthy.
    unexplained : tuple of float
        Per boundary (input side first): ``|(Σ R_out − Σ R_in) − Σ allowed
        shares|``.
    tolerance : tuple of float
        Per boundary: ``sqrt(eps_mach) · scale``.
    message : str
        The one-line verdict printed by :func:`lrp_report`.
    """

    healthy: bool
    boundary: int | None
    unexplained: tuple
    tolerance: tuple
    message: str


def _allowed(boundary, absorb_bias):
    allowed = _ALLOWED.get(boundary.rule, ())
    if absorb_bias and boundary.rule not in ("passthru", "SKIPPED"):
        allowed = ("bias",) + allowed
    return allowed


def _share(boundary, name):
    return getattr(boundary, f"{name}_share")


def check_conservation(explanation, absorb_bias=False):
    """Check that every boundary residual is bounded as its rule promises.

    See the module docstring for the criterion.

    Parameters
    ----------
    explanation : Explanation
        From :func:`lrpfast.explain`.
    absorb_bias : bool, default False
        The ``absorb_bias`` the explanation was made with (it decides whether
        the bias share is allowed).

    Returns
    -------
    Verdict
    """
    e = explanation
    rtol = float(np.sqrt(np.finfo(e.relevance.dtype).eps))
    unexplained, tolerance = [], []
    for b in e.boundaries:
        allowed = _allowed(b, absorb_bias)
        lost = b.sum_out - b.sum_in
        unexplained.append(abs(lost - sum(_share(b, s) for s in allowed)))
        scale = max(abs(b.sum_out), abs(b.sum_in), abs(b.bias_share),
                    abs(b.stabilizer_share), abs(b.degenerate_share), abs(e.logit))
        tolerance.append(rtol * scale)
    bad = [b for b, u, t in zip(e.boundaries, unexplained, tolerance) if u > t]
    rule_name = e.rule.split(" (")[0]
    if bad:
        b = bad[-1]  # the first one met walking from the output
        allowed = _allowed(b, absorb_bias)
        what = " + ".join(_SHARE_NAMES[s] for s in allowed) or "nothing"
        message = (
            f"FLAGGED: layer {b.index} {b.layer} ({b.label}): residual "
            f"{b.residual:.3e} of which {unexplained[b.index]:.3e} is not accounted "
            f"for by the shares its rule allows ({what}); its relevance is not "
            "trustworthy")
        return Verdict(False, b.index, tuple(unexplained), tuple(tolerance), message)
    if rule_name.startswith("alpha-beta") and not absorb_bias:
        n_deg = sum(b.degenerate for b in e.boundaries)
        if n_deg:
            where = ", ".join(f"layer {b.index}" for b in e.boundaries if b.degenerate)
            detail = (f"residuals are exactly the {n_deg} degenerate neuron(s) at "
                      f"{where}, as the rule allows")
        else:
            detail = "relevance is conserved exactly (to rounding) at every boundary"
    else:
        parts = sorted({s for b in e.boundaries for s in _allowed(b, absorb_bias)},
                       key=list(_SHARE_NAMES).index)
        what = " and ".join(_SHARE_NAMES[s] for s in parts)
        detail = (f"every residual is accounted for by the {what} shares, to rounding"
                  if parts else "relevance passes unchanged at every boundary")
    return Verdict(True, None, tuple(unexplained), tuple(tolerance),
                   f"healthy: {detail}")


# ---------------------------------------------------------------------------
# The report.
# ---------------------------------------------------------------------------

def _conservation_lines(e):
    wl = max(len("layer"), *(len(f"{b.index} {b.layer}") for b in e.boundaries))
    wr = max(len("rule"), *(len(b.label) for b in e.boundaries))
    head = (f"  {'layer':<{wl}}  {'rule':<{wr}}  {'sum R_out':>11} {'sum R_in':>11} "
            f"{'residual':>9} {'rel.res':>7}  {'bias':>10} {'stabiliser':>10} "
            f"{'degenerate':>10}")
    lines = [head, "  " + "-" * (len(head) - 2)]
    for b in reversed(e.boundaries):
        rel = b.residual / abs(b.sum_out) if b.sum_out != 0 else (
            0.0 if b.residual == 0 else float("inf"))
        if b.rule in ("passthru", "SKIPPED"):
            shares = f"{'-':>10} {'-':>10} {'-':>10}"
        else:
            shares = (f"{b.bias_share:>+10.3e} {b.stabilizer_share:>+10.3e} "
                      f"{b.degenerate_share:>+10.3e}")
            if b.degenerate:
                shares += f" ({b.degenerate} neuron{'s' if b.degenerate > 1 else ''})"
        lines.append(
            f"  {f'{b.index} {b.layer}':<{wl}}  {b.label:<{wr}}  {b.sum_out:>+11.4e} "
            f"{b.sum_in:>+11.4e} {b.residual:>9.3e} {rel:>7.1e}  {shares}".rstrip())
    return lines


def lrp_report(net, x, forced_class=None, top_k=8, eps=1e-2, rule="epsilon",
               gamma=0.25, alpha=2.0, absorb_bias=False):
    """The seed's LRPReport: explain one probe and describe it as text.

    Parameters
    ----------
    net : Network
    x : array-like of shape ``net.input_shape``
        The probe.
    forced_class : int or None
        Class to explain; None explains the argmax.
    top_k : int, default 8
        Rows of the top-K table (>= 1; at most the number of inputs).
    eps, rule, gamma, alpha, absorb_bias
        As in :func:`lrpfast.explain`; ``rule`` may also be a rule object or
        a per-Dense-layer list.

    Returns
    -------
    str
        The report (see the module docstring for its parts and the verdict).

    Examples
    --------
    >>> print(lf.lrp_report(net, x, rule="gamma", top_k=4))   # doctest: +SKIP
    """
    top_k = check_int(top_k, "top_k", low=1)
    e = explain(net, x, rule=rule, eps=eps, gamma=gamma, alpha=alpha,
                forced_class=forced_class, absorb_bias=absorb_bias)
    return render_report(net, e, top_k=top_k, absorb_bias=absorb_bias)


def render_report(net, e, *, top_k=8, absorb_bias=False):
    """The text of :func:`lrp_report` for an existing :class:`Explanation`."""
    from .train import _logit_index

    top_k = check_int(top_k, "top_k", low=1)
    shape = net.input_shape
    c = e.explained_class
    argmax = int(np.argmax(e.output))
    how = f"forced; argmax is {argmax}" if e.forced else f"argmax of {net.n_outputs} outputs"
    cls_line = f"  explained  class {c} ({how})   logit = {e.logit:+.6g}"
    if _logit_index(net) < len(net.layers):
        cls_line += f"   probability = {float(np.ravel(e.output)[c]):.6f}"
    arch = " -> ".join([str(net.n_inputs)] + [layer.describe() for layer in net.layers])
    lines = [
        f"LRPReport  {e.rule}" + ("  [absorb_bias]" if absorb_bias else ""),
        f"  network    {arch}",
        f"  probe      shape {shape}, {net.dtype.name}",
        cls_line,
        "",
        "(a) Relevance conservation per layer boundary, output -> input",
    ]
    lines += _conservation_lines(e)
    worst = max(e.boundaries, key=lambda b: b.residual)
    verdict = check_conservation(e, absorb_bias)
    lines += [
        f"Max conservation residual = {e.max_residual:.6e}"
        f"  (layer {worst.index} {worst.layer})",
        f"Verdict: {verdict.message}",
        "",
    ]
    k = min(top_k, e.relevance.size)
    where = _position_label(shape)
    lines.append(f"(b) Top-{k} most-relevant input {where}, ranked by |R|")
    lines.append(f"  {'rank':>4}  {'position':<14} {'relevance':>12}  {'share of sum|R|':>15}")
    for rank, (flat, value, share) in enumerate(top_positions(e.relevance, k), 1):
        lines.append(f"  {rank:>4}  {format_position(flat, shape):<14} {value:>+12.4e}  "
                     f"{100 * share:>14.1f}%")
    peak = float(np.abs(e.relevance).max())
    lines += [
        "",
        f"(c) Relevance heatmap: |R| in buckets \"{RAMP}\" = round(9*|R|/max|R|), "
        f"'@' = max|R| = {peak:.4e}; sign '+'/'-'",
    ]
    lines += heatmap_lines(e.relevance, shape)
    skipped = [b for b in e.boundaries if b.rule == "SKIPPED"]
    lines.append("")
    if skipped:
        lines.append("SKIPPED layers (relevance passed through unchanged, no value faked):")
        lines += [f"  layer {b.index} {b.layer}: {b.reason}" for b in skipped]
    else:
        lines.append("SKIPPED layers: none")
    return "\n".join(lines) + "\n"
