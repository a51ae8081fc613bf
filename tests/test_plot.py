"""lrpfast.plot: the pictures hold the relevance, on a symmetric scale, in the right colours.

Every check reads the drawn figure back (image arrays, norms, RGBA of the
colour map, bar widths, line data, legend texts) and compares it with values
computed here from the explanation, never with the plotting code's own
arithmetic.
"""

import io
import os
import subprocess
import sys
import threading
import types

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import lrpfast as lf  # noqa: E402
from lrpfast import plot  # noqa: E402
from lrpfast.explain import Explanation  # noqa: E402

RULES = ["epsilon", "gamma", "alpha-beta"]


# ---------------------------------------------------------------------------
# Fixtures and readers
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def image_net():
    """A random (2, 4, 5) network: two channels, H != W, so axes cannot be swapped."""
    return lf.Network((2, 4, 5), [lf.Dense(12, "relu"), lf.Dense(3)], dtype="float64",
                      seed=3)


@pytest.fixture(scope="module")
def probe(image_net):
    return np.random.default_rng(4).uniform(-1, 1, image_net.input_shape)


@pytest.fixture(scope="module")
def tab_net():
    return lf.Network((12,), [lf.Dense(10, "relu"), lf.Dense(3), lf.SoftMax()],
                      dtype="float64", seed=5)


@pytest.fixture(scope="module")
def tab_x(tab_net):
    return np.random.default_rng(6).normal(size=12)


def relevance_images(fig, cmap="bwr"):
    """AxesImages drawn with ``cmap``, in panel order."""
    return [im for ax in fig.axes for im in ax.get_images() if im.get_cmap().name == cmap]


def data(im):
    return np.asarray(np.ma.getdata(im.get_array()), dtype=np.float64)


def bars(ax):
    return [p for p in ax.patches if type(p).__name__ == "Rectangle"]


def ytick_texts(ax):
    return [t.get_text() for t in ax.get_yticklabels()]


def top_by_abs(values, k):
    """Indices of the k largest |v|, ties to the lower index: a plain loop."""
    v = list(np.ravel(values))
    idx = sorted(range(len(v)), key=lambda i: (-abs(v[i]), i))
    return idx[:k]


def red(rgba):
    """Red-dominant: full red, the other channels clearly lower."""
    r, g, b, _ = rgba
    return r > 0.95 and max(g, b) < r - 0.2


def blue(rgba):
    r, g, b, _ = rgba
    return b > 0.95 and max(r, g) < b - 0.2


def whiteish(rgba):
    return min(rgba[:3]) > 0.95


def fake_explanation(relevance, rule="epsilon-rule (eps=0.01)"):
    """A real Explanation of any relevance shape (the drawing does not need a network)."""
    return Explanation(relevance=np.asarray(relevance, dtype=np.float64), explained_class=1,
                       forced=False, logit=2.5, output=np.array([0.1, 0.9]),
                       stats=np.array([[2.5, 2.5, 0, 0, 0, 0]], dtype=np.float64), rule=rule)


# ---------------------------------------------------------------------------
# heatmap: images
# ---------------------------------------------------------------------------

def test_heatmap_images_are_the_relevance_per_channel(image_net, probe):
    e = lf.explain(image_net, probe)
    fig = plot.heatmap(e, probe=probe)
    assert isinstance(fig, Figure)
    ims = relevance_images(fig)
    assert len(ims) == 2
    for c, im in enumerate(ims):
        np.testing.assert_array_equal(data(im), e.relevance[c])
        # row y down, column x right: extent (left, right, bottom, top)
        assert im.origin == "upper"
        assert im.get_extent() == [-0.5, 4.5, 3.5, -0.5]
    greys = relevance_images(fig, "gray")
    assert len(greys) == 2
    for c, im in enumerate(greys):
        np.testing.assert_array_equal(data(im), probe[c])


def test_heatmap_norm_is_symmetric_at_max_abs(image_net, probe):
    e = lf.explain(image_net, probe)
    m = max(abs(float(v)) for v in e.relevance.ravel())
    for im in relevance_images(plot.heatmap(e)):
        assert im.norm.vmin == -im.norm.vmax
        assert im.norm.vmax == pytest.approx(m, rel=1e-12)


@pytest.mark.parametrize("clip", [50, 90.5, 100])
def test_heatmap_clip_is_a_percentile_of_abs_r(image_net, probe, clip):
    e = lf.explain(image_net, probe)
    a = np.sort(np.abs(e.relevance.ravel()))
    # linear-interpolated percentile, written out
    pos = clip / 100 * (a.size - 1)
    lo = int(np.floor(pos))
    expect = a[lo] + (a[min(lo + 1, a.size - 1)] - a[lo]) * (pos - lo)
    fig = plot.heatmap(e, clip=clip)
    for im in relevance_images(fig):
        assert im.norm.vmin == -im.norm.vmax
        assert im.norm.vmax == pytest.approx(expect, rel=1e-12)
    labels = " ".join(ax.get_ylabel() for ax in fig.axes)
    assert ("percentile" in labels) == (clip < 100)


def test_heatmap_colours_have_the_sign_of_relevance(image_net, probe):
    e = lf.explain(image_net, probe)
    R = e.relevance
    assert R.max() > 0 > R.min()
    for im in relevance_images(plot.heatmap(e)):
        m = im.norm.vmax
        assert red(im.to_rgba(np.array([[R.max()]]))[0, 0])
        assert blue(im.to_rgba(np.array([[R.min()]]))[0, 0])
        assert whiteish(im.to_rgba(np.array([[0.0]]))[0, 0])
        # the ends of the scale are pure red and pure blue
        np.testing.assert_allclose(im.to_rgba(np.array([[m, -m]]))[0, :, :3],
                                   [[1, 0, 0], [0, 0, 1]], atol=0.01)
        # the drawn pixels: red where R > 0 by more than 30% of max, blue where < -30%
        rgba = im.to_rgba(data(im))
        big = np.abs(data(im)) > 0.3 * im.norm.vmax
        assert all(red(p) or p[0] > p[2] for p in rgba[big & (data(im) > 0)])
        assert all(blue(p) or p[2] > p[0] for p in rgba[big & (data(im) < 0)])


def test_heatmap_title_names_rule_class_logit_residual(image_net, probe):
    e = lf.explain(image_net, probe, rule="gamma", gamma=0.5)
    title = plot.heatmap(e)._suptitle.get_text()
    assert "gamma-rule (gamma=0.5" in title
    assert f"class {e.explained_class}" in title
    assert f"{e.logit:+.4g}" in title
    assert f"{e.max_residual:.2e}" in title
    assert "(healthy)" in title and e.healthy


def test_heatmap_title_flags_broken_conservation():
    """A pass-through boundary that lost relevance: the title says FLAGGED."""
    net = lf.Network((4,), [lf.ReLU()], seed=0)
    e = Explanation(relevance=np.ones(4), explained_class=0, forced=False, logit=2.0,
                    output=np.ones(4), stats=np.array([[1.0, 2.0, 0, 0, 0, 0]]),
                    rule="epsilon-rule (eps=0.01)", _layers=net.layers, _rules=())
    title = plot.heatmap(e)._suptitle.get_text()
    assert "FLAGGED" in title and "max residual 1.00e+00" in title


def test_demo_blob_is_top_left():
    """The class-0 blob (rows 0-1, columns 0-1) lands in the top-left of the drawn map."""
    X, y = lf.datasets.blobs(120, 0.1, seed=0)
    net = lf.Network((1, 6, 6), [lf.Dense(16, "relu"), lf.Dense(2), lf.SoftMax()], seed=0)
    lf.train(net, X, y, epochs=15, seed=0)
    x = lf.datasets.blobs(1, 0.05, seed=1, cls=0)[0][0]
    e = lf.explain(net, x)
    fig = plot.heatmap(e, probe=x)
    (im,) = relevance_images(fig)
    fig.canvas.draw()
    # the top-left data pixel in display space: imshow with origin upper puts row 0 on top
    ax = im.axes
    top_left = ax.transData.transform((0, 0))
    bottom_right = ax.transData.transform((5, 5))
    assert top_left[1] > bottom_right[1] and top_left[0] < bottom_right[0]
    R = data(im)
    assert np.abs(R[:2, :2]).sum() > 0.5 * np.abs(R).sum()


def test_heatmap_rank2_is_one_panel_and_rank4_is_bars():
    rng = np.random.default_rng(0)
    R2 = rng.normal(size=(3, 7))
    fig = plot.heatmap(fake_explanation(R2), probe=np.ones((3, 7)))
    (im,) = relevance_images(fig)
    np.testing.assert_array_equal(data(im), R2)
    R4 = rng.normal(size=(2, 2, 2, 3))
    fig = plot.heatmap(fake_explanation(R4), top=5)
    (ax,) = fig.axes
    order = top_by_abs(R4, 5)
    np.testing.assert_allclose([p.get_width() for p in bars(ax)], R4.ravel()[order])
    # labelled by NumPy index [i, j, k, l]: flat = ((i*2 + j)*2 + k)*3 + l
    tuples = [(i, j, k, m) for i in range(2) for j in range(2) for k in range(2)
              for m in range(3)]
    assert ytick_texts(ax) == ["[" + ", ".join(map(str, tuples[f])) + "]" for f in order]


def test_heatmap_into_given_axes_and_figure(image_net, probe):
    e = lf.explain(image_net, probe)
    fig = Figure()
    axes = fig.subplots(1, 4)
    assert plot.heatmap(e, probe=probe, ax=axes) is fig
    # probe and map alternate, channel by channel
    assert data(axes[1].get_images()[0]).tolist() == e.relevance[0].tolist()
    assert data(axes[3].get_images()[0]).tolist() == e.relevance[1].tolist()
    assert data(axes[2].get_images()[0]).tolist() == probe[1].tolist()
    fig2 = Figure()
    assert plot.heatmap(e, fig=fig2) is fig2
    assert len(relevance_images(fig2)) == 2
    one = lf.Network((1, 3, 3), [lf.Dense(2)], seed=0)
    e1 = lf.explain(one, np.ones((1, 3, 3)))
    ax = Figure().subplots()
    assert plot.heatmap(e1, ax=ax) is ax.figure
    assert data(ax.get_images()[0]).tolist() == e1.relevance[0].tolist()


# ---------------------------------------------------------------------------
# heatmap: bars
# ---------------------------------------------------------------------------

def test_heatmap_tabular_bars_are_the_top_features(tab_net, tab_x):
    e = lf.explain(tab_net, tab_x)
    names = [f"f{i}_name" for i in range(12)]
    fig = plot.heatmap(e, feature_names=names, top=5)
    (ax,) = fig.axes
    order = top_by_abs(e.relevance, 5)
    bs = bars(ax)
    np.testing.assert_allclose([b.get_width() for b in bs], e.relevance[order])
    assert ytick_texts(ax) == [names[i] for i in order]
    # rank 1 at the top
    ys = [b.get_y() + b.get_height() / 2 for b in bs]
    top_y = ax.transData.transform((0, ys[0]))[1]
    assert all(top_y > ax.transData.transform((0, y))[1] for y in ys[1:])
    for b, i in zip(bs, order):
        assert red(b.get_facecolor()) if e.relevance[i] > 0 else blue(b.get_facecolor())
    with pytest.warns(UserWarning, match="clip=99 is ignored"):
        plot.heatmap(e, clip=99)
    # default names, top larger than n, and the probe values in the labels
    fig = plot.heatmap(e, probe=tab_x, top=50)
    (ax,) = fig.axes
    order = top_by_abs(e.relevance, 12)
    assert ytick_texts(ax) == [f"feature {i} = {tab_x[i]:.3g}" for i in order]


# ---------------------------------------------------------------------------
# rule_contrast
# ---------------------------------------------------------------------------

def test_rule_contrast_one_image_per_rule_on_a_shared_scale(image_net, probe):
    composite = [lf.Gamma(gamma=0.5), lf.Epsilon(eps=1e-3)]
    rules = RULES + [composite]
    fig = plot.rule_contrast(image_net, probe, rules)
    exps = [lf.explain(image_net, probe, rule=r) for r in rules]
    ims = relevance_images(fig)
    assert len(ims) == len(rules) * 2                      # two channels
    m = max(float(np.abs(e.relevance).max()) for e in exps)
    by_rule = [ims[k::len(rules)] for k in range(len(rules))]
    for e, (im0, im1) in zip(exps, by_rule):
        np.testing.assert_array_equal(data(im0), e.relevance[0])
        np.testing.assert_array_equal(data(im1), e.relevance[1])
        for im in (im0, im1):
            assert im.norm.vmin == -im.norm.vmax == pytest.approx(-m, rel=1e-12)
    assert "shared" in fig._suptitle.get_text()
    assert len(relevance_images(fig, "gray")) == 2         # the probe, per channel


def test_rule_contrast_per_rule_scale_and_labels(image_net, probe):
    rules = {"eps": "epsilon", "ab": lf.AlphaBeta(alpha=3.0)}
    fig = plot.rule_contrast(image_net, probe, rules, shared_scale=False)
    exps = [lf.explain(image_net, probe, rule=r) for r in rules.values()]
    ims = relevance_images(fig)
    for k, e in enumerate(exps):
        for im in ims[k::2]:
            assert im.norm.vmax == pytest.approx(float(np.abs(e.relevance).max()), rel=1e-12)
            assert im.norm.vmin == -im.norm.vmax
    assert "per-rule" in fig._suptitle.get_text()
    titles = [ax.get_title() for ax in fig.axes]
    assert any(t.startswith("eps") for t in titles) and any(t.startswith("ab") for t in titles)


def test_rule_contrast_passes_explain_options(image_net, probe):
    fig = plot.rule_contrast(image_net, probe, ["epsilon"], forced_class=2, eps=0.5)
    e = lf.explain(image_net, probe, rule="epsilon", forced_class=2, eps=0.5)
    np.testing.assert_array_equal(data(relevance_images(fig)[0]), e.relevance[0])
    with pytest.raises(ValueError, match="forced_class"):
        plot.rule_contrast(image_net, probe, ["epsilon"], forced_class=7)


def test_rule_contrast_tabular_bars(tab_net, tab_x):
    fig = plot.rule_contrast(tab_net, tab_x, RULES, top=4)
    exps = [lf.explain(tab_net, tab_x, rule=r) for r in RULES]
    stacked = np.max(np.abs([e.relevance for e in exps]), axis=0)
    order = top_by_abs(stacked, 4)
    assert len(fig.axes) == 3
    for ax, e in zip(fig.axes, exps):
        np.testing.assert_allclose([b.get_width() for b in bars(ax)], e.relevance[order])
    m = max(float(np.abs(e.relevance).max()) for e in exps)
    assert fig.axes[0].get_xlim() == pytest.approx((-1.05 * m, 1.05 * m))


# ---------------------------------------------------------------------------
# importance
# ---------------------------------------------------------------------------

def _class_means(R, cls):
    """Signed mean relevance per explained class: a loop over rows."""
    out = {}
    for k in sorted(set(cls.tolist())):
        rows = [R[i] for i in range(len(cls)) if cls[i] == k]
        out[k] = sum(rows) / len(rows)
    return out


def test_importance_tabular_bars_and_class_matrix(tab_net):
    X = np.random.default_rng(7).normal(size=(80, 12))
    b = lf.explain_batch(tab_net, X)
    names = [f"x{i}" for i in range(12)]
    fig = plot.importance(b, feature_names=names, top=6)
    left, right = fig.axes[:2]
    mean_abs = sum(np.abs(b.relevance[i]) for i in range(len(b))) / len(b)
    order = top_by_abs(mean_abs, 6)
    np.testing.assert_allclose([p.get_width() for p in bars(left)], mean_abs[order],
                               rtol=1e-12)
    assert ytick_texts(left) == [names[i] for i in order]
    means = _class_means(b.relevance, b.explained_class)
    (im,) = right.get_images()
    expect = np.array([[means[k][i] for k in means] for i in order])
    np.testing.assert_allclose(data(im), expect, rtol=1e-12)
    assert im.norm.vmin == -im.norm.vmax
    assert im.norm.vmax == pytest.approx(max(np.abs(v).max() for v in means.values()))
    assert len(right.get_xticklabels()) == len(means)


def test_importance_images(image_net):
    X = np.random.default_rng(8).uniform(-1, 1, (60, 2, 4, 5))
    b = lf.explain_batch(image_net, X)
    fig = plot.importance(b)
    mean_abs = sum(np.abs(b.relevance[i]) for i in range(len(b))) / len(b)
    reds = relevance_images(fig, "Reds")
    assert len(reds) == 2
    for c, im in enumerate(reds):
        np.testing.assert_allclose(data(im), mean_abs[c], rtol=1e-12)
    means = _class_means(b.relevance, b.explained_class)
    signed = relevance_images(fig)
    assert len(signed) == 2 * len(means)
    for c in range(2):
        for j, k in enumerate(means):
            im = signed[c * len(means) + j]
            np.testing.assert_allclose(data(im), means[k][c], rtol=1e-12)
            assert im.norm.vmin == -im.norm.vmax


# ---------------------------------------------------------------------------
# flip_curves (duck-typed FlipResults: the drawing is tested, not the evaluation)
# ---------------------------------------------------------------------------

def flip_result(label, order, seed, B=5, T=8):
    rng = np.random.default_rng(seed)
    curves = np.cumsum(-rng.uniform(0, 1, (B, T + 1)), axis=1) + 3.0
    frac = np.linspace(0, 1, T + 1)
    aopc = (curves[:, :1] - curves).mean(axis=1)
    return types.SimpleNamespace(curves=curves, fraction=frac, aopc=aopc,
                                 auc=curves.mean(axis=1), order=order, score="logit",
                                 label=label)


def test_flip_curves_list_lines_are_mean_curves_with_aopc():
    rs = [flip_result("epsilon", "morf", 1), flip_result("gamma", "morf", 2)]
    fig = plot.flip_curves(rs)
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert len(lines) == 2
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    for line, r, text in zip(lines, rs, legend):
        mean = [sum(r.curves[:, t]) / r.curves.shape[0] for t in range(r.curves.shape[1])]
        np.testing.assert_allclose(line.get_ydata(), mean, rtol=1e-12)
        np.testing.assert_array_equal(line.get_xdata(), r.fraction)
        assert r.label in text and f"{np.mean(r.aopc):.3g}" in text


def test_flip_curves_rule_comparison_styles():
    labels = ["epsilon", "gamma"]
    comp = types.SimpleNamespace(
        labels=labels,
        morf={k: flip_result(k, "morf", i) for i, k in enumerate(labels)},
        lerf={k: flip_result(k, "lerf", 10 + i) for i, k in enumerate(labels)},
        random={k: flip_result(k, "random", 20 + i) for i, k in enumerate(labels)},
        best="gamma")
    fig = plot.flip_curves(comp)
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert len(lines) == 5                           # 2 MoRF, 2 LeRF, 1 random
    assert [ln.get_linestyle() for ln in lines] == ["-", "-", "--", "--", ":"]
    assert lines[0].get_color() == lines[2].get_color() != lines[1].get_color()
    assert lines[4].get_color() == "0.5"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "MoRF" in legend[0] and "LeRF" in legend[2] and "random" in legend[4]
    np.testing.assert_allclose(lines[3].get_ydata(), comp.lerf["gamma"].curves.mean(0))
    assert f"{comp.lerf['gamma'].aopc.mean():.3g}" in legend[3]
    assert "best rule (largest MoRF − LeRF AOPC): gamma" in ax.get_title()


def test_flip_curves_dict_single_and_ax():
    r = flip_result("ignored", "morf", 3)
    ax = Figure().subplots()
    assert plot.flip_curves({"mine": r}, ax=ax) is ax.figure
    assert "mine" in ax.get_legend().get_texts()[0].get_text()
    fig = plot.flip_curves(r)
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), r.curves.mean(0))


def test_flip_curves_of_a_real_comparison():
    net = lf.Network((1, 3, 4), [lf.Dense(6, "relu"), lf.Dense(2), lf.SoftMax()],
                     dtype="float64", seed=2)
    X = np.random.default_rng(3).uniform(0, 1, (12, 1, 3, 4))
    comp = lf.evaluate.compare_rules(net, X, ["epsilon", "gamma"], score="logit")
    fig = plot.flip_curves(comp)
    (ax,) = fig.axes
    lines = ax.get_lines()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    expect = [comp.morf[k] for k in comp.labels] + [comp.lerf[k] for k in comp.labels] + [
        comp.random[comp.labels[0]]]
    assert len(lines) == len(expect) == 5
    for line, r, text in zip(lines, expect, legend):
        mean = [sum(r.curves[:, t]) / len(r.curves) for t in range(r.curves.shape[1])]
        np.testing.assert_allclose(line.get_ydata(), mean, rtol=1e-12)
        assert f"AOPC {np.mean(r.aopc):.3g}" in text
    assert comp.best in ax.get_title() and "logit" in ax.get_ylabel()
    one = lf.evaluate.pixel_flipping(net, X, lf.explain_batch(net, X), order="lerf")
    line = plot.flip_curves(one).axes[0].get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), one.curves.mean(axis=0))
    assert line.get_linestyle() == "--"


# ---------------------------------------------------------------------------
# Files, threads, and a missing matplotlib
# ---------------------------------------------------------------------------

def _png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    return buf.getvalue()


def test_drawing_from_threads_gives_the_same_png(image_net, probe):
    e = lf.explain(image_net, probe)
    expect = _png(plot.heatmap(e, probe=probe))
    assert expect[:8] == b"\x89PNG\r\n\x1a\n"
    out = [None] * 4

    def work(i):
        out[i] = _png(plot.heatmap(e, probe=probe))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [expect] * 4


@pytest.fixture
def no_matplotlib(monkeypatch):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def test_missing_matplotlib_is_one_import_error_naming_the_extra(no_matplotlib, image_net,
                                                                 probe):
    e = lf.explain(image_net, probe)
    for call in (lambda: plot.heatmap(e), lambda: plot.require(),
                 lambda: plot.rule_contrast(image_net, probe),
                 lambda: plot.flip_curves([flip_result("a", "morf", 0)]),
                 lambda: plot.importance(lf.explain_batch(image_net, probe[None]))):
        with pytest.raises(ImportError, match=r'pip install "lrpfast\[plot\]"'):
            call()


def test_import_lrpfast_never_imports_matplotlib():
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "import numpy as np, lrpfast as lf, lrpfast.plot\n"
            "net = lf.Network((4,), [lf.Dense(2)], seed=0)\n"
            "print(lf.explain(net, np.ones(4)).explained_class)\n"
            "try:\n    lrpfast.plot.heatmap(lf.explain(net, np.ones(4)))\n"
            "except ImportError as exc:\n    print('ImportError:', exc)\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(lf.__file__)))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=os.path.dirname(os.path.abspath(__file__)),
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[1].startswith("ImportError:") and '"lrpfast[plot]"' in lines[1]


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------

def test_bad_input_names_the_argument(image_net, probe, tab_net, tab_x):
    e = lf.explain(image_net, probe)
    et = lf.explain(tab_net, tab_x)
    b = lf.explain_batch(image_net, probe[None])
    cases = [
        (TypeError, "e must be an Explanation", lambda: plot.heatmap(probe)),
        (TypeError, "BatchExplanation", lambda: plot.heatmap(b)),
        (ValueError, "clip", lambda: plot.heatmap(e, clip=0)),
        (ValueError, "clip", lambda: plot.heatmap(e, clip=100.5)),
        (ValueError, "clip", lambda: plot.heatmap(e, clip=float("nan"))),
        (TypeError, "clip", lambda: plot.heatmap(e, clip="99")),
        (ValueError, "top", lambda: plot.heatmap(et, top=0)),
        (ValueError, "feature_names", lambda: plot.heatmap(et, feature_names=["a"] * 11)),
        (TypeError, "feature_names", lambda: plot.heatmap(et, feature_names="abc")),
        (ValueError, "feature_names", lambda: plot.heatmap(e, feature_names=["a"] * 40)),
        (ValueError, "probe", lambda: plot.heatmap(e, probe=np.ones((2, 5, 4)))),
        (ValueError, "probe", lambda: plot.heatmap(e, probe=np.full(probe.shape, np.nan))),
        (ValueError, "cmap", lambda: plot.heatmap(e, cmap="no-such-map")),
        (ValueError, "ax= or fig=", lambda: plot.heatmap(e, ax=Figure().subplots(),
                                                         fig=Figure())),
        (ValueError, "ax", lambda: plot.heatmap(e, ax=Figure().subplots())),
        (TypeError, "ax", lambda: plot.heatmap(e, ax="left")),
        (TypeError, "fig", lambda: plot.heatmap(e, fig="big")),
        (ValueError, "rules", lambda: plot.rule_contrast(image_net, probe, [])),
        (ValueError, "rule", lambda: plot.rule_contrast(image_net, probe, ["nope"])),
        (TypeError, "shared_scale", lambda: plot.rule_contrast(image_net, probe,
                                                               shared_scale="yes")),
        (TypeError, "b must be a BatchExplanation", lambda: plot.importance(e)),
        (ValueError, "feature_names", lambda: plot.importance(b, feature_names=["a"])),
        (ValueError, "class_names", lambda: plot.importance(b, class_names=["a"])),
        (TypeError, "results", lambda: plot.flip_curves(42)),
        (ValueError, "results", lambda: plot.flip_curves([])),
        (TypeError, "FlipResult", lambda: plot.flip_curves([object()])),
    ]
    for exc, words, call in cases:
        with pytest.raises(exc, match=words):
            call()


def test_all_zero_relevance_still_draws():
    e = fake_explanation(np.zeros((1, 3, 3)))
    (im,) = relevance_images(plot.heatmap(e))
    assert im.norm.vmax > 0 and im.norm.vmin == -im.norm.vmax
    assert whiteish(im.to_rgba(np.array([[0.0]]))[0, 0])


def test_returns_figures_not_pyplot_state(image_net, probe):
    import matplotlib.pyplot as plt  # noqa: F401  (pyplot loaded, but not used by lrpfast)

    before = plt.get_fignums()
    fig = plot.heatmap(lf.explain(image_net, probe))
    assert isinstance(fig, Figure) and plt.get_fignums() == before
    assert all(isinstance(a, Axes) for a in fig.axes)


# ---------------------------------------------------------------------------
# The command line: --png
# ---------------------------------------------------------------------------

PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(lf.__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))


def run_cli(*args, block_matplotlib=False):
    pre = "import sys; sys.modules['matplotlib'] = None; " if block_matplotlib else \
        "import sys; "
    code = pre + "from lrpfast.cli import main; sys.exit(main(sys.argv[1:]))"
    env = dict(os.environ)
    env["PYTHONPATH"] = PKG_PARENT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", code, *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=HERE, timeout=300)


def read_png(path):
    import matplotlib.image as mpimg

    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    return mpimg.imread(path)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    net = lf.Network((1, 6, 6), [lf.Dense(8, "relu"), lf.Dense(2), lf.SoftMax()], seed=1)
    net.save(d / "m.npz")
    x = lf.datasets.blobs(1, 0.1, seed=2, cls=1)[0][0]
    np.save(d / "p.npy", x)
    return types.SimpleNamespace(dir=d, net=net, x=x)


def test_cli_explain_png(saved):
    out = saved.dir / "heat.png"
    proc = run_cli("explain", saved.dir / "m.npz", saved.dir / "p.npy", "--rule", "gamma",
                   "--png", out)
    assert proc.returncode == 0, proc.stderr
    assert "LRPReport" in proc.stdout
    img = read_png(out)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 200
    # the picture has red (positive) and white pixels of the map
    rgb = img[..., :3]
    assert ((rgb[..., 0] > 0.95) & (rgb[..., 2] < 0.3)).any()


def test_cli_demo_png(tmp_path):
    folder = tmp_path / "pictures" / "demo"                 # created, with its parent
    proc = run_cli("demo", "--png", folder)
    assert proc.returncode == 0, proc.stderr
    for name in ("probe1.png", "probe2.png", "rule_contrast.png", "flip_curves.png"):
        assert read_png(folder / name).shape[0] > 100
        assert name in proc.stdout.splitlines()[-1]
    assert proc.stdout.splitlines()[-2] == f"pictures written to {folder}:"
    assert max(len(line) for line in proc.stdout.splitlines()) <= 100


def test_cli_evaluate_png(saved, tmp_path):
    X = lf.datasets.blobs(6, 0.1, seed=3)[0]
    np.save(tmp_path / "data.npy", X)
    out = tmp_path / "flip.png"
    proc = run_cli("evaluate", saved.dir / "m.npz", tmp_path / "data.npy", "--rules",
                   "epsilon,gamma", "--png", out)
    assert proc.returncode == 0, proc.stderr
    assert "MoRF AOPC" in proc.stdout
    assert read_png(out).shape[1] > 300


def test_cli_png_without_matplotlib_fails_first_in_one_line(saved, tmp_path):
    np.save(tmp_path / "data.npy", lf.datasets.blobs(4, 0.1, seed=3)[0])
    for args in (("explain", saved.dir / "m.npz", saved.dir / "p.npy", "--png",
                  tmp_path / "x.png"),
                 ("evaluate", saved.dir / "m.npz", tmp_path / "data.npy", "--png",
                  tmp_path / "x.png"),
                 ("demo", "--png", tmp_path / "d")):
        proc = run_cli(*args, block_matplotlib=True)
        assert proc.returncode == 2
        assert proc.stdout == ""                      # failed before any work
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and 'pip install "lrpfast[plot]"' in lines[0], proc.stderr
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "d").exists()


def test_cli_png_bad_targets(saved, tmp_path):
    proc = run_cli("explain", saved.dir / "m.npz", saved.dir / "p.npy", "--png",
                   tmp_path / "no" / "such" / "x.png")
    assert proc.returncode == 2 and "--png" in proc.stderr and "no such folder" in proc.stderr
    (tmp_path / "file").write_text("x")
    proc = run_cli("demo", "--png", tmp_path / "file")
    assert proc.returncode == 2 and "--png" in proc.stderr and "not a folder" in proc.stderr


def test_any_rank_networks():
    """Rank-2 inputs draw one map; rank-4 inputs draw bars labelled by index tuples."""
    rng = np.random.default_rng(9)
    net2 = lf.Network((5, 7), [lf.Dense(6, "relu"), lf.Dense(2)], dtype="float64", seed=0)
    x2 = rng.uniform(size=(5, 7))
    e2 = lf.explain(net2, x2)
    (im,) = relevance_images(plot.heatmap(e2, probe=x2))
    np.testing.assert_array_equal(data(im), e2.relevance)
    assert im.get_extent() == [-0.5, 6.5, 4.5, -0.5]
    fig = plot.rule_contrast(net2, x2, ["epsilon", "gamma"])
    for im, r in zip(relevance_images(fig), ["epsilon", "gamma"]):
        np.testing.assert_array_equal(data(im), lf.explain(net2, x2, rule=r).relevance)
    net4 = lf.Network((2, 2, 2, 3), [lf.Dense(4, "relu"), lf.Dense(2)], dtype="float64",
                      seed=0)
    X4 = rng.uniform(size=(10, 2, 2, 2, 3))
    b4 = lf.explain_batch(net4, X4)
    fig = plot.importance(b4, top=5)
    mean_abs = sum(np.abs(b4.relevance[i]) for i in range(10)) / 10
    order = top_by_abs(mean_abs, 5)
    np.testing.assert_allclose([p.get_width() for p in bars(fig.axes[0])],
                               mean_abs.ravel()[order], rtol=1e-12)
    tuples = [(i, j, k, m) for i in range(2) for j in range(2) for k in range(2)
              for m in range(3)]
    assert ytick_texts(fig.axes[0]) == ["[" + ", ".join(map(str, tuples[f])) + "]" for f in order]


def test_rule_contrast_takes_composites_and_new_rules(image_net, probe):
    rules = {"epsilon-plus": lf.composite("epsilon-plus"), "z-plus": lf.ZPlus(),
             "flat": lf.Flat()}
    fig = plot.rule_contrast(image_net, probe, rules, shared_scale=False)
    ims = relevance_images(fig)
    assert len(ims) == 2 * len(rules)
    for k, rule in enumerate(rules.values()):
        e = lf.explain(image_net, probe, rule=rule)
        np.testing.assert_array_equal(data(ims[k]), e.relevance[0])
        np.testing.assert_array_equal(data(ims[len(rules) + k]), e.relevance[1])
