"""Pictures of explanations: heatmaps, rule contrasts, global importance, flip curves.

Every function returns a :class:`matplotlib.figure.Figure`.  matplotlib is an
optional extra (``pip install "lrpfast[plot]"``): it is imported when a
function draws, never by ``import lrpfast``, and a missing matplotlib raises
one :class:`ImportError` naming the extra.  The figures are built with the
object API (:class:`matplotlib.figure.Figure`, no ``pyplot`` state), so they
draw headless and from threads; save one with ``fig.savefig("x.png")``, or
show it in a notebook by leaving it as a cell's value.

Conventions (those of zennit and iNNvestigate):

* relevance is drawn *signed* on a symmetric scale ``[-m, m]``, ``m = max|R|``
  (or a percentile of ``|R|`` with ``clip=``): positive red, negative blue,
  zero white (colour map ``"bwr"``);
* an image-like input ``(C, H, W)`` gets one panel per channel showing
  ``relevance[c]`` with row ``y`` downwards and column ``x`` to the right
  (``imshow`` with ``origin="upper"``), the same picture as the printed
  report, whose positions read ``(c, x, y) = relevance[c, y, x]``;
  a ``(H, W)`` input is one panel;
* a tabular ``(n,)`` input gets a horizontal bar chart of its top features
  by ``|R|`` (red positive, blue negative), largest at the top.  Inputs of
  other ranks are drawn the same way over their flat C-order positions,
  labelled with their NumPy index ``[i, j, ...]``, as the report prints them.
"""

from __future__ import annotations

import math
import textwrap
import warnings

import numpy as np

from ._validation import as_float_array, check_bool, check_int, check_real
from .explain import BatchExplanation, Explanation, explain
from .report import format_position, rank_by_magnitude

__all__ = ["flip_curves", "heatmap", "importance", "rule_contrast"]

_EXTRA = 'pip install "lrpfast[plot]"'
_PANEL = 2.6          # inches per image panel
_WRAP = 64            # characters per title line


def _mpl():
    """The matplotlib pieces lrpfast draws with, or one ImportError naming the extra."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib import colors
        from matplotlib.axes import Axes
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            f"lrpfast.plot needs matplotlib, which is not installed ({exc}); "
            f"install it with: {_EXTRA}") from None
    return Figure, Axes, colors


def require():
    """Raise the ImportError of a missing matplotlib now, before any work.

    The ``--png`` options of the ``lrpfast`` command call it first, so a
    missing extra fails before a model is trained or explained.
    """
    _mpl()


# ---------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------

def _check_explanation(e, name="e"):
    if isinstance(e, BatchExplanation):
        raise TypeError(f"{name} must be one Explanation (from lrpfast.explain), got a "
                        "BatchExplanation; draw one row with b[i], or use "
                        "lrpfast.plot.importance(b)")
    if not isinstance(e, Explanation):
        raise TypeError(f"{name} must be an Explanation (from lrpfast.explain), got "
                        f"{type(e).__name__}")
    return e


def _check_clip(clip):
    if clip is None:
        return None
    return check_real(clip, "clip", low=0.0, high=100.0, low_inclusive=False,
                      what="a percentile in (0, 100]")


def _check_names(feature_names, n, shape, name="feature_names",
                 what="input feature ({n} for input shape {shape})"):
    if feature_names is None:
        return None
    if isinstance(feature_names, (str, bytes)) or not hasattr(feature_names, "__len__"):
        raise TypeError(f"{name} must be a sequence of {n} strings, got "
                        f"{type(feature_names).__name__}")
    names = [str(f) for f in feature_names]
    if len(names) != n:
        raise ValueError(f"{name} must have one name per {what.format(n=n, shape=shape)}, "
                         f"got {len(names)}")
    return names


def _check_figure_args(ax, fig):
    Figure, Axes, _ = _mpl()
    if ax is not None and fig is not None:
        raise ValueError("pass ax= or fig=, not both")
    if fig is not None and not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    if ax is None:
        return None
    axes = [ax] if isinstance(ax, Axes) else list(ax) if isinstance(
        ax, (list, tuple, np.ndarray)) else None
    if axes is None or not axes or not all(isinstance(a, Axes) for a in np.ravel(axes)):
        raise TypeError(f"ax must be a matplotlib Axes or a sequence of them, got "
                        f"{type(ax).__name__}")
    return list(np.ravel(axes))


def _axes_grid(n, ncols, *, ax, fig, panel=(_PANEL, _PANEL), what="panels"):
    """``(fig, axes)``: ``n`` axes in a grid of ``ncols``, from ax=, fig= or a new figure."""
    Figure, _, _ = _mpl()
    if ax is not None:
        if len(ax) != n:
            raise ValueError(f"ax: this picture has {n} {what}, got {len(ax)} Axes; "
                             "pass that many, or fig= (or nothing) to lay them out")
        return ax[0].figure, ax
    nrows = math.ceil(n / ncols)
    if fig is None:
        fig = Figure(figsize=(panel[0] * ncols + 1.2, panel[1] * nrows + 1.0),
                     layout="constrained")
    grid = fig.subplots(nrows, ncols, squeeze=False)
    axes = list(grid.ravel())
    for extra in axes[n:]:
        extra.set_visible(False)
    return fig, axes[:n]


def _symmetric_max(values, clip):
    """``m`` of the symmetric scale ``[-m, m]``: max|v|, or its ``clip`` percentile.

    Never 0 (an all-zero map gets ``m = 1``), so the norm is always valid.
    """
    a = np.abs(np.asarray(values, dtype=np.float64)).ravel()
    m = float(a.max()) if a.size else 0.0
    if clip is not None and clip < 100:
        m = float(np.percentile(a, clip)) or m
    return m if m > 0 else 1.0


def _scale_text(m, clip):
    if clip is None or clip == 100:
        return f"symmetric scale ±{m:.3g} = max|R|"
    return f"symmetric scale ±{m:.3g} = {clip:g}th percentile of |R|, larger values saturate"


def _title(e):
    forced = " (forced)" if e.forced else ""
    head = textwrap.fill(e.rule, _WRAP, break_on_hyphens=False)
    verdict = "healthy" if e.healthy else "FLAGGED: see lrp_report"
    return (f"{head}\nclass {e.explained_class}{forced}, logit {e.logit:+.4g}, "
            f"max residual {e.max_residual:.2e} ({verdict})")


def _image_panel(shape2d, width=_PANEL, title=0.0):
    """Panel size (inches) for a map of ``shape2d``: the map's aspect, plus title room."""
    H, W = shape2d
    return (width, width * min(2.5, max(0.4, H / W)) + title)


def _style_image_axes(ax, shape2d):
    H, W = shape2d
    if W <= 10:                      # small maps: every pixel has its tick
        ax.set_xticks(range(W))
    if H <= 10:
        ax.set_yticks(range(H))
    ax.set_xlabel("x (column)")
    ax.set_ylabel("y (row)")


def _position_names(shape, feature_names):
    """One label per flat position: the feature names, or as the report prints
    positions (``feature i``, ``[i, j, ...]``)."""
    if feature_names is not None:
        return feature_names
    return [format_position(f, shape) for f in range(math.prod(shape))]


def _sign_colours(cmap, values):
    """Solid end colours of the diverging map: positive as +m, negative as -m."""
    return [cmap(1.0) if v > 0 else cmap(0.0) if v < 0 else (0.6, 0.6, 0.6, 1.0)
            for v in values]


def _bars(ax, values, order, labels, cmap, m, probe=None):
    """Horizontal bars of ``values[order]``, the first at the top."""
    v = np.asarray(values, dtype=np.float64).ravel()
    ylabels = [labels[i] if probe is None else f"{labels[i]} = {probe[i]:.3g}"
               for i in order]
    bars = ax.barh(np.arange(len(order)), v[order], color=_sign_colours(cmap, v[order]),
                   edgecolor="none")
    ax.set_yticks(np.arange(len(order)), ylabels)
    ax.set_ylim(len(order) - 0.5, -0.5)           # rank 1 at the top
    ax.axvline(0.0, color="0.3", lw=0.8)
    ax.set_xlim(-1.05 * m, 1.05 * m)
    ax.grid(axis="x", color="0.9", lw=0.6)
    ax.set_axisbelow(True)
    return bars


# ---------------------------------------------------------------------------
# heatmap
# ---------------------------------------------------------------------------

def heatmap(e, *, probe=None, cmap="bwr", clip=None, feature_names=None, top=20,
            colorbar=True, ax=None, fig=None):
    """Draw the signed relevance of one explanation.

    Parameters
    ----------
    e : Explanation
        From :func:`lrpfast.explain`.
    probe : array-like of shape ``e.relevance.shape``, optional
        The explained input, drawn in grey beside each relevance panel (for
        bar charts its values are written after the feature names).
    cmap : str or matplotlib Colormap, default "bwr"
        A diverging map whose middle is white (``"bwr"``, ``"seismic"``,
        ``"coolwarm"``, ...); the norm is symmetric around 0.
    clip : float in (0, 100], optional
        Saturate the colour scale of image panels at this percentile of
        ``|R|`` instead of at ``max|R|`` (e.g. 99 keeps one extreme pixel from
        washing out the rest).  Bar charts ignore it, with a warning.
    feature_names : sequence of str, optional
        For bar charts: one name per input position (C order).
    top : int, default 20
        For bar charts: how many features, by ``|R|``.
    colorbar : bool, default True
        Draw a colour bar beside image panels.
    ax : matplotlib Axes or sequence of Axes, optional
        Draw into these: one per panel (one for a bar chart or a one-channel
        map without probe; with a probe, probe and map alternate, channel by
        channel).  The title then goes on the first relevance panel.
    fig : matplotlib Figure, optional
        Lay the panels out in this (empty) figure.

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    Image inputs ``(C, H, W)`` (and ``(H, W)``) are drawn one panel per
    channel as ``relevance[c]``, row ``y`` down and column ``x`` right, on one
    symmetric scale for all channels.  ``(n,)`` inputs, and inputs of any
    other rank, are drawn as bars of their ``top`` positions by ``|R|``.

    Examples
    --------
    >>> fig = lrpfast.plot.heatmap(lf.explain(net, x), probe=x)   # doctest: +SKIP
    >>> fig.savefig("relevance.png", dpi=100)                       # doctest: +SKIP
    """
    _, _, colors = _mpl()
    e = _check_explanation(e)
    clip = _check_clip(clip)
    top = check_int(top, "top", low=1)
    axes = _check_figure_args(ax, fig)
    R = np.asarray(e.relevance, dtype=np.float64)
    shape = R.shape
    if probe is not None:
        probe = as_float_array(probe, "probe", np.float64, shape=shape)
    cm = _colormap(cmap)
    m = _symmetric_max(R, clip)
    image = R.ndim in (2, 3)
    if image and feature_names is not None:
        raise ValueError(f"feature_names: names are drawn for bar charts of (n,) inputs; "
                         f"this input has the image shape {shape}")
    if not image:
        if clip is not None:
            warnings.warn(f"clip={clip:g} is ignored: bars of {shape} relevance are drawn "
                          "to their full length (clip saturates the colours of image "
                          "panels)", UserWarning, stacklevel=2)
        names = _check_names(feature_names, R.size, shape)
        order = rank_by_magnitude(R, top)
        fig, (bax,) = _axes_grid(1, 1, ax=axes, fig=fig,
                                 panel=(6.0, 0.8 + 0.28 * len(order)))
        _bars(bax, R, order, _position_names(shape, names), cm,
              float(np.abs(R[np.unravel_index(order, shape)]).max()) or 1.0,
              None if probe is None else probe.ravel())
        share = np.abs(R.ravel()[order]).sum() / (np.abs(R).sum() or 1.0)
        bax.set_xlabel(f"relevance R (top {len(order)} of {R.size} by |R|, "
                       f"{100 * share:.0f}% of Σ|R|)")
        (bax.set_title if axes is not None else fig.suptitle)(_title(e))
        return fig

    planes = R.reshape((-1,) + shape[-2:])
    probes = None if probe is None else probe.reshape(planes.shape)
    C = planes.shape[0]
    per = 1 if probes is None else 2
    ncols = per if per == 2 else min(C, 4)
    fig, panels = _axes_grid(C * per, ncols, ax=axes, fig=fig,
                             panel=_image_panel(planes.shape[1:], title=0.3))
    norm = colors.Normalize(vmin=-m, vmax=m)
    images = []
    for c in range(C):
        cax = panels[c * per + per - 1]
        if probes is not None:
            pax = panels[c * per]
            pax.imshow(probes[c], cmap="gray", interpolation="nearest", origin="upper")
            pax.set_title(f"input{f', channel {c}' if C > 1 else ''} (grey)")
            _style_image_axes(pax, planes.shape[1:])
        images.append(cax.imshow(planes[c], cmap=cm, norm=norm, interpolation="nearest",
                                 origin="upper"))
        if C > 1 or probes is not None:
            cax.set_title(f"relevance{f', channel {c}' if C > 1 else ''}")
        _style_image_axes(cax, planes.shape[1:])
    if colorbar:
        cb = fig.colorbar(images[0], ax=[panels[c * per + per - 1] for c in range(C)],
                          shrink=0.9)
        cb.set_label("relevance R: red +, blue −\n" + _scale_text(m, clip))
    if axes is not None:
        first = panels[per - 1]
        first.set_title(_title(e) + ("\n" + first.get_title() if first.get_title() else ""),
                        fontsize="medium")
    else:
        fig.suptitle(_title(e))
    return fig


def _colormap(cmap):
    import matplotlib

    try:
        return matplotlib.colormaps[cmap] if isinstance(cmap, str) else \
            matplotlib.colormaps.get_cmap(cmap)
    except (KeyError, ValueError, TypeError):
        raise ValueError(f"cmap must be a matplotlib colour map or its name "
                         f"(e.g. 'bwr'), got {cmap!r}") from None


# ---------------------------------------------------------------------------
# rule_contrast
# ---------------------------------------------------------------------------

def _rule_items(rules):
    """``[(label or None, rule)]`` from a rule, a list of rules or a dict label -> rule."""
    if isinstance(rules, dict):
        if not rules:
            raise ValueError("rules must name at least one rule, got an empty dict")
        return [(str(k), v) for k, v in rules.items()]
    if isinstance(rules, (list, tuple)):
        if not rules:
            raise ValueError("rules must name at least one rule, got an empty list")
        return [(None, r) for r in rules]
    return [(None, rules)]


def rule_contrast(net, x, rules=("epsilon", "gamma", "alpha-beta"), *, shared_scale=True,
                  cmap="bwr", clip=None, feature_names=None, top=15, fig=None,
                  **explain_kwargs):
    """The probe and one heatmap per rule, side by side.

    Parameters
    ----------
    net : Network
    x : array-like of shape ``net.input_shape``
        The probe.
    rules : rule, list of rules or dict, default ("epsilon", "gamma", "alpha-beta")
        Each entry is anything :func:`lrpfast.explain` accepts as ``rule=``:
        a name, a rule object, or a list with one rule per Dense layer
        (composite LRP; so a composite inside the list is itself a list).
        A dict maps panel labels to rules.
    shared_scale : bool, default True
        One symmetric scale ``[-m, m]`` for all rules (``m`` = the largest
        ``max|R|``, or ``clip`` percentile, over the rules), so the panels
        compare magnitudes; False gives each rule its own ``m``, so each
        panel shows its own pattern.  The figure title says which.
    cmap, clip
        As in :func:`heatmap`.
    feature_names, top
        For ``(n,)`` inputs, drawn as bars: names, and how many features (the
        top ones by the largest ``|R|`` over the rules, in the same order in
        every panel).
    fig : matplotlib Figure, optional
        Lay the panels out in this (empty) figure.
    **explain_kwargs
        Passed to every :func:`lrpfast.explain` call (``eps``, ``gamma``,
        ``alpha``, ``forced_class``, ``absorb_bias``, ``backend``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    _, _, colors = _mpl()
    clip = _check_clip(clip)
    top = check_int(top, "top", low=1)
    shared_scale = check_bool(shared_scale, "shared_scale")
    _check_figure_args(None, fig)
    items = _rule_items(rules)
    exps = [explain(net, x, rule=r, **explain_kwargs) for _, r in items]
    labels = [lab if lab is not None else e.rule for (lab, _), e in zip(items, exps)]
    R = [np.asarray(e.relevance, dtype=np.float64) for e in exps]
    shape = R[0].shape
    probe = as_float_array(x, "x", np.float64, shape=shape)
    cm = _colormap(cmap)
    ms = [_symmetric_max(r, clip) for r in R]
    m_all = _symmetric_max(np.stack(R), clip)
    scale = ("shared " if shared_scale else "per-rule ") + (
        "symmetric scale" + (f" ±{m_all:.3g}" if shared_scale else "s"))
    e0 = exps[0]
    classes = sorted({e.explained_class for e in exps})
    head = (f"Rule contrast: class {', '.join(map(str, classes))}, logit {e0.logit:+.4g}; "
            f"{scale}")
    n = len(exps)
    if len(shape) not in (2, 3):
        names = _position_names(shape, _check_names(feature_names, R[0].size, shape))
        order = rank_by_magnitude(np.max(np.abs(np.stack(R)), axis=0), top)
        fig, panels = _axes_grid(n, n, ax=None, fig=fig,
                                 panel=(4.2, 0.8 + 0.28 * len(order)))
        for k, (ax, r, e, lab) in enumerate(zip(panels, R, exps, labels)):
            m = m_all if shared_scale else float(np.abs(r.ravel()[order]).max()) or 1.0
            _bars(ax, r, order, names if k == 0 else [""] * len(names), cm, m,
                  probe.ravel() if k == 0 else None)
            ax.set_title(_panel_title(lab, e), fontsize="medium")
            ax.set_xlabel("relevance R")
        fig.suptitle(head)
        return fig
    if feature_names is not None:
        raise ValueError(f"feature_names: names are drawn for bar charts of (n,) inputs; "
                         f"this input has the image shape {shape}")
    planes = [r.reshape((-1,) + shape[-2:]) for r in R]
    pplanes = probe.reshape(planes[0].shape)
    C = pplanes.shape[0]
    c_one = C == 1
    fig, panels = _axes_grid(C * (n + 1), n + 1, ax=None, fig=fig,
                             panel=_image_panel(pplanes.shape[1:], title=0.9 if c_one else 0.5))
    norms = [colors.Normalize(-m_all, m_all) if shared_scale else colors.Normalize(-m, m)
             for m in ms]
    for c in range(C):
        row = panels[c * (n + 1):(c + 1) * (n + 1)]
        row[0].imshow(pplanes[c], cmap="gray", interpolation="nearest", origin="upper")
        if c == 0:
            row[0].set_title("input\n(grey)", fontsize="medium")
        _style_image_axes(row[0], pplanes.shape[1:])
        if C > 1:
            row[0].set_ylabel(f"channel {c}\ny (row)")
        for k in range(n):
            im = row[k + 1].imshow(planes[k][c], cmap=cm, norm=norms[k],
                                   interpolation="nearest", origin="upper")
            if c == 0:             # the rule heads its column
                row[k + 1].set_title(_panel_title(labels[k], exps[k]), fontsize="medium")
            _style_image_axes(row[k + 1], pplanes.shape[1:])
            if not shared_scale and c == C - 1:
                cb = fig.colorbar(im, ax=[panels[j * (n + 1) + k + 1] for j in range(C)],
                                  location="bottom", shrink=0.9)
                cb.set_label(f"own scale ±{ms[k]:.3g}")
        if shared_scale and c == C - 1:
            cb = fig.colorbar(im, ax=[p for j, p in enumerate(panels) if j % (n + 1)],
                              shrink=0.9)
            cb.set_label("relevance R: red +, blue −\n" + _scale_text(m_all, clip)
                         + "\n(shared by all rules)")
    fig.suptitle(head)
    return fig


def _panel_title(label, e):
    head = textwrap.fill(label, 28, break_on_hyphens=False)
    return f"{head}\nmax residual {e.max_residual:.1e}"


# ---------------------------------------------------------------------------
# importance
# ---------------------------------------------------------------------------

def _importance(b):
    """``(mean |R| over rows, signed mean per explained class, classes, counts)``.

    The first is ``BatchExplanation.importance()``; the signed means are over
    the rows of each class that some row explains.
    """
    R = np.asarray(b.relevance, dtype=np.float64)
    mean_abs = b.importance()
    cls = np.asarray(b.explained_class)
    classes, counts = np.unique(cls, return_counts=True)
    signed = np.stack([R[cls == k].mean(axis=0) for k in classes])
    return mean_abs, signed, classes, counts


def importance(b, feature_names=None, top=20, *, class_names=None, fig=None):
    """Global feature importance of a batch: mean ``|R|``, and the signed mean per class.

    Parameters
    ----------
    b : BatchExplanation
        From :func:`lrpfast.explain_batch`, over a data set.
    feature_names : sequence of str, optional
        One name per input position (C order).
    top : int, default 20
        For bar charts: how many features, ranked by mean ``|R|``.
    class_names : sequence of str, optional
        One name per network output, for the per-class panel.
    fig : matplotlib Figure, optional
        Lay the panels out in this (empty) figure.

    Returns
    -------
    matplotlib.figure.Figure
        ``(n,)`` inputs (and other non-image ranks): left, bars of the mean
        ``|R|`` over all rows for the ``top`` features; right, a matrix of the
        *signed* mean relevance of those features per explained class (rows
        are features, columns the classes some row explains; red speaks for
        the class, blue against it).  Image inputs ``(C, H, W)``: the mean
        ``|R|`` map, then one signed mean map per explained class.

    Notes
    -----
    The mean ``|R|`` is ``b.importance()`` (mean over rows of ``|R|``); the
    signed class means average ``R`` over the rows whose
    ``explained_class`` is that class, so they show the direction in which a
    feature pushes the class's logit, while ``|R|`` shows how much it matters.
    """
    _, _, colors = _mpl()
    if not isinstance(b, BatchExplanation):
        hint = "; for one Explanation use lrpfast.plot.heatmap" if isinstance(
            b, Explanation) else ""
        raise TypeError(f"b must be a BatchExplanation (from lrpfast.explain_batch), got "
                        f"{type(b).__name__}{hint}")
    top = check_int(top, "top", low=1)
    _check_figure_args(None, fig)
    mean_abs, signed, classes, counts = _importance(b)
    shape = mean_abs.shape
    n_out = int(np.prod(b.outputs.shape[1:])) if b.outputs.ndim > 1 else 1
    if class_names is not None:
        cnames = _check_names(class_names, n_out, (n_out,), "class_names",
                              "network output ({n})")
    else:
        cnames = [f"class {k}" for k in range(n_out)]
    clabels = [f"{cnames[k]}\n(n={n})" for k, n in zip(classes, counts)]
    head = (f"Global importance over {len(b)} explanations ({textwrap.shorten(b.rule, 50)})")
    K = len(classes)
    ms = _symmetric_max(signed, None)
    if len(shape) not in (2, 3):
        names = _position_names(shape, _check_names(feature_names, mean_abs.size, shape))
        order = rank_by_magnitude(mean_abs, top)
        T = len(order)
        Figure, _, _ = _mpl()
        if fig is None:
            fig = Figure(figsize=(6.5 + 0.9 * K, 1.3 + 0.3 * T), layout="constrained")
        left, right = fig.subplots(1, 2, width_ratios=[3, max(1.0, 0.45 * K)])
        v = mean_abs.ravel()[order]
        left.barh(np.arange(T), v, color="0.35")
        left.set_yticks(np.arange(T), [names[i] for i in order])
        left.set_ylim(T - 0.5, -0.5)
        left.set_xlabel(f"mean |R| over rows (top {T} of {mean_abs.size})")
        left.grid(axis="x", color="0.9", lw=0.6)
        left.set_axisbelow(True)
        left.set_title("how much each feature matters")
        M = signed.reshape(K, -1)[:, order].T                   # (T, K)
        cm = _colormap("bwr")
        im = right.imshow(M, cmap=cm, norm=colors.Normalize(-ms, ms), aspect="auto",
                          interpolation="nearest", origin="upper")
        right.set_xticks(np.arange(K), clabels)
        right.set_yticks(np.arange(T), [""] * T)
        right.set_title("signed mean R per\nexplained class\n(red for, blue against)")
        if T * K <= 200:
            for i in range(T):
                for k in range(K):
                    val = M[i, k]
                    right.text(k, i, f"{val:+.2g}", ha="center", va="center",
                               fontsize="x-small",
                               color="white" if abs(val) > 0.6 * ms else "black")
        cb = fig.colorbar(im, ax=right, shrink=0.8)
        cb.set_label(f"signed mean R, symmetric ±{ms:.3g}")
        fig.suptitle(head)
        return fig
    if feature_names is not None:
        raise ValueError(f"feature_names: names are drawn for bar charts of (n,) inputs; "
                         f"this input has the image shape {shape}")
    planes = mean_abs.reshape((-1,) + shape[-2:])
    splanes = signed.reshape((K,) + planes.shape)
    C = planes.shape[0]
    # One row per channel: mean |R|, then one signed map per class.  A single
    # channel flows over rows of at most 6 panels (10 digit classes stay legible).
    ncols = K + 1 if C > 1 else min(K + 1, 6)
    fig, panels = _axes_grid(C * (K + 1), ncols, ax=None, fig=fig,
                             panel=_image_panel(planes.shape[1:], 2.2, title=0.3))
    snorm = colors.Normalize(-ms, ms)
    cm = _colormap("bwr")
    peak = float(mean_abs.max()) or 1.0
    abs_axes, signed_axes = [], []
    for c in range(C):
        row = panels[c * (K + 1):(c + 1) * (K + 1)]
        chan = f", channel {c}" if C > 1 else ""
        imabs = row[0].imshow(planes[c], cmap="Reds", norm=colors.Normalize(0, peak),
                              interpolation="nearest", origin="upper")
        row[0].set_title(f"mean |R|{chan}", fontsize="medium")
        _style_image_axes(row[0], planes.shape[1:])
        abs_axes.append(row[0])
        for k in range(K):
            ims = row[k + 1].imshow(splanes[k, c], cmap=cm, norm=snorm,
                                    interpolation="nearest", origin="upper")
            row[k + 1].set_title(clabels[k].replace("\n", " ") + chan, fontsize="medium")
            _style_image_axes(row[k + 1], planes.shape[1:])
            signed_axes.append(row[k + 1])
    cb = fig.colorbar(imabs, ax=abs_axes, location="bottom", shrink=0.9)
    cb.set_label(f"mean |R|, 0 to {peak:.3g}")
    cb = fig.colorbar(ims, ax=signed_axes, location="bottom", shrink=0.6)
    cb.set_label(f"signed mean R per explained class (red +, blue −), ±{ms:.3g}")
    fig.suptitle(head)
    return fig


# ---------------------------------------------------------------------------
# flip_curves
# ---------------------------------------------------------------------------

_ORDER_NAMES = {"morf": "MoRF", "lerf": "LeRF", "random": "random"}


def _check_flip(r, name):
    for attr in ("curves", "fraction", "aopc"):
        if not hasattr(r, attr):
            raise TypeError(f"{name} must be a FlipResult from lrpfast.evaluate (with "
                            f"curves, fraction and aopc), got {type(r).__name__}")
    curves = np.asarray(r.curves, dtype=np.float64)
    frac = np.asarray(r.fraction, dtype=np.float64)
    if curves.ndim != 2 or frac.ndim != 1 or curves.shape[1] != frac.size:
        raise ValueError(f"{name}: curves must have shape (B, T+1) and fraction (T+1,), "
                         f"got {curves.shape} and {frac.shape}")
    return curves, frac


def _flip_items(results):
    """``[(label, FlipResult, style)]``; style is "morf", "lerf" or "random"."""
    if hasattr(results, "labels") and hasattr(results, "morf"):       # RuleComparison
        items = []
        for order in ("morf", "lerf"):
            d = getattr(results, order, None) or {}
            items += [(lab, d[lab], order) for lab in results.labels if lab in d]
        rnd = getattr(results, "random", None) or {}
        if rnd:
            lab = next(iter(rnd))
            items.append((lab, rnd[lab], "random"))
        return items
    if hasattr(results, "curves"):
        results = [results]
    if isinstance(results, dict):
        pairs = list(results.items())
    elif isinstance(results, (list, tuple)):
        pairs = [(getattr(r, "label", f"result {k}"), r) for k, r in enumerate(results)]
    else:
        raise TypeError("results must be a RuleComparison, a FlipResult, a dict label -> "
                        f"FlipResult or a list of FlipResults, got {type(results).__name__}")
    if not pairs:
        raise ValueError("results must hold at least one FlipResult, got none")
    return [(str(lab), r, str(getattr(r, "order", "morf"))) for lab, r in pairs]


def flip_curves(results, ax=None, *, fig=None):
    """Mean pixel-flipping curves per rule, with the mean AOPC in the legend.

    Parameters
    ----------
    results : RuleComparison, FlipResult, dict or list
        From :mod:`lrpfast.evaluate`: a ``compare_rules`` result (MoRF solid,
        LeRF dashed in the same colour, the random order as a grey dotted
        reference), one ``pixel_flipping`` result, a dict label -> result, or
        a list of results (labelled by their ``label``).
    ax : matplotlib Axes, optional
    fig : matplotlib Figure, optional

    Returns
    -------
    matplotlib.figure.Figure
        One line per result: the mean over probes of ``curves`` against
        ``fraction``; the legend gives each line's label, order and mean AOPC.
        A faithful explanation makes the MoRF curve fall fast (large AOPC).
    """
    Figure, _, _ = _mpl()
    axes = _check_figure_args(ax, fig)
    items = _flip_items(results)
    if axes is not None:
        if len(axes) != 1:
            raise ValueError(f"ax: flip_curves draws on one Axes, got {len(axes)}")
        ax = axes[0]
        fig = ax.figure
    else:
        fig = Figure(figsize=(10, 4.5), layout="constrained") if fig is None else fig
        ax = fig.subplots()
    palette = {}
    scores, orders = set(), set()
    for k, (lab, r, style) in enumerate(items):
        curves, frac = _check_flip(r, f"results[{lab!r}]")
        aopc = float(np.mean(np.asarray(r.aopc, dtype=np.float64)))
        mean = curves.mean(axis=0)
        if style == "random":
            kw = dict(color="0.5", ls=":", lw=1.8)
            text = f"random order (AOPC {aopc:.3g})"
        else:
            colour = palette.setdefault(lab, f"C{len(palette) % 10}")
            kw = dict(color=colour, ls="-" if style != "lerf" else "--", lw=2)
            text = (f"{textwrap.shorten(lab, 40)} {_ORDER_NAMES.get(style, style)} "
                    f"(AOPC {aopc:.3g})")
        ax.plot(frac, mean, label=text, **kw)
        scores.add(str(getattr(r, "score", "score")))
        orders.add(style)
    ax.set_xlabel("fraction of inputs flipped (MoRF: most relevant first, "
                  "LeRF: least relevant first)")
    ax.set_ylabel(f"mean {' / '.join(sorted(scores))} of the explained class")
    ax.grid(color="0.9", lw=0.6)
    # beside the axes, not over the curves
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0),
              borderaxespad=0.0)
    n_probes = np.asarray(items[0][1].curves).shape[0]
    best = getattr(results, "best", None)
    title = f"Pixel flipping, mean over {n_probes} probe{'s' if n_probes != 1 else ''}"
    if best is not None:
        title += f"\nbest rule (largest MoRF − LeRF AOPC): {textwrap.shorten(str(best), 40)}"
    settings = getattr(results, "settings", "")
    if settings:
        title += "\n" + textwrap.shorten(str(settings), 80)
    ax.set_title(title, fontsize="medium")
    return fig
