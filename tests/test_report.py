"""lrp_report(): structure, numbers recomputed independently, verdict."""

import dataclasses
import re

import numpy as np
import pytest

import lrpfast as lf
from conftest import param_bytes
from lrpfast.datasets import blob_positions, blobs
from lrpfast.explain import explain
from lrpfast.layers import Dense, Identity, LayerNorm, SoftMax
from lrpfast.network import Network
from lrpfast.report import (RAMP, ascii_probe, bucket_map, check_conservation,
                            lrp_report, render_report, sign_map, top_positions)
from lrpfast.train import train

RULES = [("epsilon", "epsilon-rule (eps=0.01)"),
         ("gamma", "gamma-rule (gamma=0.25, eps=0.01)"),
         ("alpha-beta", "alpha-beta-rule (alpha=2, beta=1)")]


@pytest.fixture(scope="module")
def blob_net():
    net = Network((1, 6, 6), [Dense(16, "relu"), Dense(12, "relu"), Dense(2, "linear"),
                              SoftMax()], seed=0)
    X, y = blobs(240, 0.1, seed=0)
    train(net, X, y, epochs=10, seed=0)
    return net


@pytest.fixture(scope="module")
def probe():
    return blobs(1, 0.05, seed=7, cls=0)[0][0]


# ---------------------------------------------------------------------------
# Parsing helpers (independent of report.py's code).
# ---------------------------------------------------------------------------

def section(text, start, stop=None):
    lines = text.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(start))
    j = len(lines) if stop is None else next(
        k for k in range(i + 1, len(lines)) if lines[k].startswith(stop))
    return lines[i + 1:j]


TOP_ROW = re.compile(r"^\s+(\d+)\s+(\(\d+, \d+, \d+\)|feature \d+)\s+([+-]\d\.\d{4}e[+-]\d+)"
                     r"\s+(\d+\.\d)%$")


def top_rows(text):
    rows = [TOP_ROW.match(line) for line in section(text, "(b)", "(c)")]
    return [(int(m[1]), m[2], float(m[3]), float(m[4])) for m in rows if m]


MAP_ROW = re.compile(r"^\s*(?:[yi] = \d+\s+)?\|([^|]*)\|(?:\s+\|([^|]*)\|)?$")


def map_rows(text):
    """(magnitude cells, sign cells) per heatmap row, from section (c)."""
    rows = [MAP_ROW.match(line) for line in section(text, "(c)", "SKIPPED")]
    return [(m[1], m[2]) for m in rows if m]


def table_rows(text):
    return [line for line in section(text, "(a)", "Max conservation residual")
            if re.match(r"^\s+\d+ ", line)]


def independent_ranking(relevance):
    r = np.asarray(relevance, dtype=np.float64).ravel()
    return sorted(range(r.size), key=lambda i: (-abs(r[i]), i))


def cxy(flat, shape):
    C, H, W = shape
    return f"({flat // (H * W)}, {flat % W}, {(flat // W) % H})"


# ---------------------------------------------------------------------------
# Structure.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("rule, label", RULES)
def test_sections_in_order(blob_net, probe, rule, label):
    text = lrp_report(blob_net, probe, rule=rule)
    e = explain(blob_net, probe, rule=rule)
    first = text.splitlines()[0]
    assert first.startswith("LRPReport") and label in first
    marks = ["LRPReport", "explained  class", "(a) ", "Max conservation residual = ",
             "Verdict: ", "(b) Top-8 most-relevant input positions", "(c) ",
             "SKIPPED layers"]
    pos = [text.index(m) for m in marks]
    assert pos == sorted(pos)
    assert f"class {e.explained_class} (argmax of 2 outputs)" in text
    assert f"logit = {e.logit:+.6g}" in text
    assert f"probability = {float(e.output[e.explained_class]):.6f}" in text


def test_forced_class_header(blob_net, probe):
    text = lrp_report(blob_net, probe, forced_class=1)
    assert "class 1 (forced; argmax is 0)" in text


def test_no_probability_without_softmax(probe):
    net = Network((1, 6, 6), [Dense(4, "relu"), Dense(2)], seed=0)
    text = lrp_report(net, probe)
    assert "probability" not in text
    assert "SKIPPED layers: none" in text


def test_conservation_table_rows_output_to_input(blob_net, probe):
    e = explain(blob_net, probe)
    rows = table_rows(lrp_report(blob_net, probe))
    assert [int(r.split()[0]) for r in rows] == [3, 2, 1, 0]
    for row, b in zip(rows, reversed(e.boundaries)):
        assert b.layer in row and b.rule in row
        assert f"{b.sum_out:+.4e}" in row and f"{b.sum_in:+.4e}" in row
        assert f"{b.residual:.2e}" in row
        if b.rule == "epsilon":
            assert f"{b.stabilizer_share:+.2e}" in row
    # The reason of a SKIPPED layer is given once, in the list at the end.
    assert rows[0].split()[2] == "SKIPPED"


@pytest.mark.parametrize("rule", [r for r, _ in RULES])
def test_max_residual_equals_explain(blob_net, probe, rule):
    text = lrp_report(blob_net, probe, rule=rule)
    e = explain(blob_net, probe, rule=rule)
    m = re.search(r"^Max conservation residual = (\S+)", text, re.M)
    assert m[1] == f"{e.max_residual:.6e}"
    assert float(m[1]) == pytest.approx(e.max_residual, rel=1e-6, abs=0)
    assert e.max_residual == max(b.residual for b in e.boundaries)


@pytest.mark.parametrize("rule", [r for r, _ in RULES])
@pytest.mark.parametrize("top_k", [1, 5, 8, 36])
def test_top_k_matches_independent_argsort(blob_net, probe, rule, top_k):
    text = lrp_report(blob_net, probe, rule=rule, top_k=top_k)
    e = explain(blob_net, probe, rule=rule)
    rows = top_rows(text)
    expected = independent_ranking(e.relevance)[:top_k]
    r = e.relevance.astype(np.float64).ravel()
    total = np.abs(r).sum()
    assert [row[0] for row in rows] == list(range(1, top_k + 1))
    assert [row[1] for row in rows] == [cxy(i, (1, 6, 6)) for i in expected]
    assert [row[2] for row in rows] == [float(f"{r[i]:+.4e}") for i in expected]
    assert [row[3] for row in rows] == [float(f"{100 * abs(r[i]) / total:.1f}") for i in expected]


def test_top_k_clipped_to_input_size(probe):
    net = Network((5,), [Dense(2)], seed=0)
    text = lrp_report(net, np.arange(1.0, 6.0), top_k=50)
    assert "(b) Top-5 most-relevant input features" in text
    assert len(top_rows(text)) == 5


def test_ties_go_to_the_lower_flat_index():
    # Equal inputs and equal weights: every input gets the same relevance.
    net = Network((1, 2, 3), [Dense(2)], dtype="float64", seed=0)
    net.layers[0].weight = np.ones((6, 2))
    text = lrp_report(net, np.ones((1, 2, 3)), top_k=6)
    rel = explain(net, np.ones((1, 2, 3))).relevance
    assert np.all(rel == rel.flat[0])
    assert [row[1] for row in top_rows(text)] == [
        "(0, 0, 0)", "(0, 1, 0)", "(0, 2, 0)", "(0, 0, 1)", "(0, 1, 1)", "(0, 2, 1)"]
    # And in the helper, with ties among other values.
    r = np.array([0.5, -2.0, 2.0, 0.5, -0.5, 2.0])
    assert [t[0] for t in top_positions(r, 6)] == [1, 2, 5, 0, 3, 4]


@pytest.mark.parametrize("rule", [r for r, _ in RULES])
def test_heatmap_buckets_recomputed(blob_net, probe, rule):
    text = lrp_report(blob_net, probe, rule=rule)
    rel = explain(blob_net, probe, rule=rule).relevance.astype(np.float64)[0]
    peak = np.abs(rel).max()
    rows = map_rows(text)
    assert len(rows) == 6
    for y, (mag, sign) in enumerate(rows):
        assert len(mag) == len(sign) == 6
        for x in range(6):
            assert RAMP.index(mag[x]) == round(9 * abs(rel[y, x]) / peak)
            v = rel[y, x]
            assert sign[x] == ("." if abs(v) < 0.01 * peak else "+" if v > 0 else "-")
    assert "@" in "".join(m for m, _ in rows)
    assert f"max|R| = {peak:.4e}" in text


def test_bucket_map_edge_cases():
    assert bucket_map(np.zeros(4)).tolist() == [0, 0, 0, 0]
    # 9 * 0.5 = 4.5 rounds half to even (4); 9 * 1/18 = 0.5 rounds to 0.
    assert bucket_map([1.0, -0.5, 1 / 18, 0.0]).tolist() == [9, 4, 0, 0]


def test_skipped_layers_listed_with_reason():
    net = Network((1, 6, 6), [Dense(8, "relu"), LayerNorm(), Identity(), Dense(2),
                              SoftMax()], seed=0)
    x = blobs(1, 0.1, seed=0)[0][0]
    for rule, _ in RULES:
        text = lrp_report(net, x, rule=rule)
        tail = section(text, "SKIPPED layers")
        assert tail == [f"  layer 1 LayerNorm: no {rule} rule",
                        f"  layer 4 SoftMax: no {rule} rule"]
        rows = table_rows(text)
        assert rows[0].split()[2] == "SKIPPED"              # SoftMax, first row
        assert rows[2].split()[2] == "passthru"             # Identity
        assert rows[3].split()[2] == "SKIPPED"              # LayerNorm
        assert [int(r.split()[0]) for r in rows] == [4, 3, 2, 1, 0]


def test_composite_rule_report(blob_net, probe):
    text = lrp_report(blob_net, probe, rule=["gamma", "gamma", "epsilon"])
    assert text.startswith("LRPReport  composite: gamma-rule")
    assert "layer 3 SoftMax: no LRP rule" in text
    assert "Verdict: healthy" in text


def test_tabular_input():
    net = Network((12,), [Dense(6, "tanh"), Dense(3), SoftMax()], dtype="float64", seed=3)
    x = np.linspace(-1.0, 1.0, 12)
    text = lrp_report(net, x, top_k=4)
    e = explain(net, x)
    rows = top_rows(text)
    assert [row[1] for row in rows] == [f"feature {i}" for i in
                                        independent_ranking(e.relevance)[:4]]
    maps = map_rows(text)
    assert len(maps) == 1  # one row
    mag, sign = maps[0]
    peak = np.abs(e.relevance).max()
    assert [RAMP.index(ch) for ch in mag] == [round(9 * abs(v) / peak) for v in e.relevance]
    assert sign == "".join("." if abs(v) < 0.01 * peak else "+" if v > 0 else "-"
                           for v in e.relevance)
    assert "(channel, x, y)" not in text


def test_multichannel_positions():
    net = Network((2, 3, 4), [Dense(5, "relu"), Dense(2)], dtype="float64", seed=1)
    x = np.random.default_rng(0).uniform(size=(2, 3, 4))
    text = lrp_report(net, x, top_k=24)
    e = explain(net, x)
    assert [row[1] for row in top_rows(text)] == [
        cxy(i, (2, 3, 4)) for i in independent_ranking(e.relevance)]
    maps = map_rows(text)
    assert len(maps) == 6  # 2 channels x 3 rows
    peak = np.abs(e.relevance).max()  # one scale over all channels
    for k, (mag, _) in enumerate(maps):
        c, y = divmod(k, 3)
        assert [RAMP.index(ch) for ch in mag] == [
            round(9 * abs(v) / peak) for v in e.relevance[c, y]]
    assert "channel 0" in text and "channel 1" in text


def test_report_does_not_change_weights(blob_net, probe):
    before = param_bytes(blob_net)
    for rule, _ in RULES:
        lrp_report(blob_net, probe, rule=rule, absorb_bias=True)
    assert param_bytes(blob_net) == before


def test_demo_like_probe_is_on_the_blob(blob_net, probe):
    rows = top_rows(lrp_report(blob_net, probe, top_k=4))
    assert {row[1] for row in rows} == {"(%d, %d, %d)" % p for p in blob_positions(0)}


def test_ascii_probe():
    x = np.zeros((1, 2, 3))
    x[0, 1, 2] = 2.0
    x[0, 0, 0] = 1.0
    text = ascii_probe(x, title="p")
    rows = [MAP_ROW.match(line) for line in text.splitlines()]
    assert [(m[1], m[2]) for m in rows if m] == [("=  ", None), ("  @", None)]
    assert text.startswith("p: |x|")


# ---------------------------------------------------------------------------
# The verdict.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("rule", [r for r, _ in RULES])
@pytest.mark.parametrize("absorb_bias", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_real_explanations_are_healthy(rule, absorb_bias, dtype):
    net = Network((1, 6, 6), [Dense(16, "relu"), Dense(12, "tanh"), Dense(3),
                              SoftMax()], dtype=dtype, seed=2)
    rng = np.random.default_rng(5)
    for layer in net.dense_layers:
        layer.bias = rng.normal(scale=0.3, size=layer.bias.shape)
    for x in rng.uniform(size=(5, 1, 6, 6)):
        e = explain(net, x, rule=rule, absorb_bias=absorb_bias)
        v = check_conservation(e, absorb_bias)
        assert v.healthy, v.message
        assert v.boundary is None
        for b, u, t in zip(e.boundaries, v.unexplained, v.tolerance):
            assert u <= t
            # residual <= sum of |allowed shares| + tolerance
            allowed = abs(b.bias_share) + abs(b.stabilizer_share) + abs(b.degenerate_share)
            assert b.residual <= allowed + t
        text = render_report(net, e, absorb_bias=absorb_bias)
        assert "Verdict: healthy" in text


class _Tampered:
    """An Explanation look-alike whose boundary ``k`` is edited."""

    def __init__(self, e, k, **changes):
        for name in ("relevance", "explained_class", "forced", "logit", "output", "rule"):
            setattr(self, name, getattr(e, name))
        bounds = list(e.boundaries)
        bounds[k] = dataclasses.replace(bounds[k], **changes)
        self.boundaries = tuple(bounds)
        self.max_residual = max(b.residual for b in bounds)


_tamper = _Tampered


def test_unaccounted_residual_is_flagged_naming_the_boundary(blob_net, probe):
    e = explain(blob_net, probe)
    b = e.boundaries[1]
    bad = _tamper(e, 1, sum_in=b.sum_in - 0.5, residual=b.residual + 0.5)
    v = check_conservation(bad)
    assert not v.healthy and v.boundary == 1
    assert v.message.startswith("FLAGGED: layer 1 Dense(12, relu)")
    text = render_report(blob_net, bad)
    assert "Verdict: FLAGGED: layer 1 Dense(12, relu) (epsilon)" in text


def test_first_flagged_boundary_from_the_output(blob_net, probe):
    e = explain(blob_net, probe)
    bad = _tamper(_tamper(e, 0, sum_in=e.boundaries[0].sum_in + 1),
                  2, sum_in=e.boundaries[2].sum_in + 1)
    assert check_conservation(bad).boundary == 2


def test_passthru_or_skipped_residual_is_flagged(blob_net, probe):
    e = explain(blob_net, probe)
    b = e.boundaries[3]  # SoftMax
    bad = _tamper(e, 3, sum_in=b.sum_in * 1.01, residual=abs(b.sum_in) * 0.01)
    v = check_conservation(bad)
    assert v.boundary == 3 and "SKIPPED (no epsilon rule)" in v.message


def test_bias_share_only_allowed_with_absorb_bias(blob_net, probe):
    e = explain(blob_net, probe)
    b = e.boundaries[2]
    # Move the stabiliser share into the bias column: the sums still add up,
    # but default mode never lets the bias absorb relevance.
    moved = _tamper(e, 2, bias_share=b.stabilizer_share, stabilizer_share=0.0)
    assert not check_conservation(moved).healthy
    assert check_conservation(moved, absorb_bias=True).healthy


def test_alpha_beta_degenerate_neurons_are_accounted(blob_net, probe):
    e = explain(blob_net, probe, rule="alpha-beta")
    b = e.boundaries[1]
    # A degenerate neuron that lost 0.3: accounted when its share says so.
    fake = _tamper(e, 1, sum_in=b.sum_out - 0.3, residual=0.3, degenerate_share=0.3,
                   degenerate=1)
    v = check_conservation(fake)
    assert v.healthy and "1 degenerate neuron(s) at layer 1" in v.message
    # A stabiliser share is not something alpha-beta has.
    fake2 = _tamper(e, 1, sum_in=b.sum_out - 0.3, residual=0.3, stabilizer_share=0.3)
    assert not check_conservation(fake2).healthy


def test_tolerance_is_rounding_sized(blob_net, probe):
    e = explain(blob_net, probe)
    v = check_conservation(e)
    scale = max(abs(e.logit), *(abs(b.sum_out) for b in e.boundaries))
    assert max(v.tolerance) <= np.sqrt(np.finfo(np.float32).eps) * scale * 1.01
    # A perturbation above the tolerance is caught.
    b = e.boundaries[0]
    bump = 2 * v.tolerance[0]
    assert not check_conservation(_tamper(e, 0, sum_in=b.sum_in - bump)).healthy


# ---------------------------------------------------------------------------
# Validation.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(top_k=0), ValueError, "top_k"),
    (dict(top_k=2.5), TypeError, "top_k"),
    (dict(rule="lrp0"), ValueError, "rule"),
    (dict(eps=0), ValueError, "eps"),
    (dict(alpha=0.5, rule="alpha-beta"), ValueError, "alpha"),
    (dict(forced_class=2), ValueError, "forced_class"),
])
def test_bad_arguments(blob_net, probe, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        lrp_report(blob_net, probe, **kwargs)


def test_bad_probe(blob_net):
    with pytest.raises(ValueError, match="x must"):
        lrp_report(blob_net, np.zeros((6, 6)))
    with pytest.raises(ValueError, match="NaN"):
        lrp_report(blob_net, np.full((1, 6, 6), np.nan))


# ---------------------------------------------------------------------------
# Reading: width, the indexing note, the sign floor, feature names.
# ---------------------------------------------------------------------------

def _widest(text):
    return max(len(line) for line in text.splitlines())


@pytest.mark.parametrize("rule", [r for r, _ in RULES] + [["gamma", "gamma", "epsilon"]])
@pytest.mark.parametrize("absorb_bias", [False, True])
def test_report_fits_100_columns(blob_net, probe, rule, absorb_bias):
    text = lrp_report(blob_net, probe, rule=rule, absorb_bias=absorb_bias, top_k=36)
    assert _widest(text) <= 100, text


@pytest.mark.parametrize("rule", [r for r, _ in RULES])
def test_report_fits_100_columns_for_big_networks(rule):
    # Long layer descriptions, many layers, a one-output head, 300 features.
    layers = [Dense(1024, "sigmoid"), LayerNorm(), Dense(512, "tanh"), Identity(),
              Dense(1000, "relu"), Dense(300, "linear"), Dense(1, "sigmoid")]
    net = Network((300,), layers, seed=0)
    x = np.random.default_rng(0).normal(size=300)
    names = [f"a very long column name number {i} of the table" for i in range(300)]
    text = lrp_report(net, x, rule=rule, top_k=20, feature_names=names)
    assert _widest(text) <= 100, text
    image = Network((3, 20, 60), [Dense(64, "relu"), Dense(10), SoftMax()], seed=0)
    text = lrp_report(image, np.random.default_rng(1).uniform(size=(3, 20, 60)), rule=rule)
    assert _widest(text) <= 100, text


def test_flagged_verdict_fits_100_columns(blob_net, probe):
    e = explain(blob_net, probe)
    b = e.boundaries[1]
    text = render_report(blob_net, _tamper(e, 1, sum_in=b.sum_in - 0.5,
                                           residual=b.residual + 0.5))
    assert "Verdict: FLAGGED" in text and _widest(text) <= 100


def test_header_states_the_indexing_and_it_holds():
    net = Network((2, 3, 4), [Dense(5, "relu"), Dense(2)], dtype="float64", seed=1)
    x = np.random.default_rng(0).uniform(size=(2, 3, 4))
    text = lrp_report(net, x, top_k=24)
    assert "position (c, x, y) = relevance[c, y, x]" in text.splitlines()[2]
    e = explain(net, x)
    for _, pos, value, _ in top_rows(text):
        c, px, py = map(int, pos.strip("()").split(", "))
        assert float(f"{e.relevance[c, py, px]:+.4e}") == value   # [c, y, x], as stated


def test_sign_map_dots_below_one_percent():
    v = np.array([1.0, -0.5, 0.0099, -0.0099, 0.01, -0.01, 0.0])
    assert "".join(sign_map(v)) == "+-..+-."
    assert "".join(sign_map(np.zeros(3))) == "..."
    assert "".join(sign_map(-v)) == "-+..-+."


def test_feature_names_replace_positions():
    net = Network((12,), [Dense(6, "tanh"), Dense(3), SoftMax()], dtype="float64", seed=3)
    x = np.linspace(-1.0, 1.0, 12)
    names = [f"col_{chr(97 + i)}" for i in range(12)]
    text = lrp_report(net, x, top_k=5, feature_names=names)
    e = explain(net, x)
    rows = [re.match(r"^\s+(\d+)\s+(\S+)\s+([+-]\d\.\d{4}e[+-]\d+)", line)
            for line in section(text, "(b)", "(c)")]
    got = [m[2] for m in rows if m]
    assert got == [names[i] for i in independent_ranking(e.relevance)[:5]]
    assert "feature 0" not in text
    # numpy arrays of str work too
    assert lrp_report(net, x, top_k=5, feature_names=np.array(names)) == text


@pytest.mark.parametrize("names, exc, match", [
    (["a"] * 11, ValueError, "one name per input feature \\(12\\), got 11"),
    ("abcdefghijkl", TypeError, "list of 12 str"),
    (list(range(12)), TypeError, "at index 0"),
    (["a"] * 11 + [None], TypeError, "at index 11"),
])
def test_feature_names_validated(names, exc, match):
    net = Network((12,), [Dense(3)], seed=0)
    with pytest.raises(exc, match=match):
        lrp_report(net, np.ones(12), feature_names=names)


def test_feature_names_refused_for_images(blob_net, probe):
    with pytest.raises(ValueError, match="feature_names is for tabular inputs"):
        lrp_report(blob_net, probe, feature_names=["a"] * 36)


def test_wide_tabular_heatmap_wraps_and_keeps_every_feature():
    net = Network((95,), [Dense(4, "relu"), Dense(2)], dtype="float64", seed=0)
    x = np.random.default_rng(2).normal(size=95)
    text = lrp_report(net, x)
    e = explain(net, x)
    maps = map_rows(text)
    mags = "".join(m for m, _ in maps)
    peak = np.abs(e.relevance).max()
    assert [RAMP.index(ch) for ch in mags] == [round(9 * abs(v) / peak) for v in e.relevance]
    assert [len(m) for m, _ in maps] == [40, 40, 15]
    assert _widest(text) <= 100


def test_wide_image_gets_the_sign_map_below():
    net = Network((1, 2, 50), [Dense(3)], dtype="float64", seed=0)
    x = np.random.default_rng(3).normal(size=(1, 2, 50))
    text = lrp_report(net, x)
    e = explain(net, x)
    maps = map_rows(text)
    assert len(maps) == 4 and all(s is None for _, s in maps)  # 2 |R| rows, then 2 sign rows
    peak = np.abs(e.relevance).max()
    for y in range(2):
        assert maps[2 + y][0] == "".join(
            "." if abs(v) < 0.01 * peak else "+" if v > 0 else "-" for v in e.relevance[0, y])
    assert _widest(text) <= 100


def test_explanation_health_matches_the_report(blob_net, probe):
    for rule, _ in RULES:
        for absorb in (False, True):
            e = explain(blob_net, probe, rule=rule, absorb_bias=absorb)
            v = check_conservation(e, absorb)
            assert e.absorb_bias is absorb
            assert e.healthy is v.healthy is True
            assert e.verdict == v.message
            assert f"Verdict: {e.verdict}" in render_report(blob_net, e).replace("\n  ", " ")
    # A broken explanation: Σ R_in of layer 1 moved by 0.5, nothing accounting for it.
    e = explain(blob_net, probe)
    stats = e.stats.copy()
    stats[1, 0] -= 0.5
    bad = dataclasses.replace(e, stats=stats)
    assert bad.healthy is False and check_conservation(bad).healthy is False
    assert bad.verdict.startswith("FLAGGED: layer 1 Dense(12, relu)")
    # The bias mode is remembered: a bias share is allowed only with absorb_bias.
    b = e.boundaries[2]
    stats = e.stats.copy()
    stats[2, 2], stats[2, 3] = b.stabilizer_share, 0.0     # stabiliser -> bias column
    moved = dataclasses.replace(e, stats=stats)
    assert moved.healthy is False
    assert dataclasses.replace(e, stats=stats, absorb_bias=True).healthy is True


def test_batch_items_remember_the_bias_mode(blob_net):
    from lrpfast.explain import explain_batch

    X = blobs(4, 0.1, seed=3)[0]
    for absorb in (False, True):
        batch = explain_batch(blob_net, X, rule="gamma", absorb_bias=absorb)
        assert batch.absorb_bias is absorb
        for i in range(4):
            e = batch[i]
            assert e.absorb_bias is absorb
            assert e.healthy == check_conservation(e, absorb).healthy


def test_very_wide_image_is_drawn_in_bands_of_columns():
    net = Network((2, 3, 170), [Dense(3)], dtype="float64", seed=0)
    x = np.random.default_rng(4).normal(size=(2, 3, 170))
    text = lrp_report(net, x)
    rel = explain(net, x).relevance
    peak = np.abs(rel).max()
    maps = map_rows(text)
    # per channel, 3 bands (80, 80, 10 columns), each 3 |R| rows then 3 sign rows
    assert len(maps) == 2 * 3 * 6
    for c in range(2):
        for y in range(3):
            mag = "".join(maps[c * 18 + band * 6 + y][0] for band in range(3))
            sgn = "".join(maps[c * 18 + band * 6 + 3 + y][0] for band in range(3))
            assert [RAMP.index(ch) for ch in mag] == [round(9 * abs(v) / peak)
                                                      for v in rel[c, y]]
            assert sgn == "".join("." if abs(v) < 0.01 * peak else "+" if v > 0 else "-"
                                  for v in rel[c, y])
    assert "channel 1, x = 160..169" in text
    assert _widest(text) <= 100


def _every_rule():
    from lrpfast.composites import COMPOSITES, needs_bounds
    from lrpfast.rules import NAMED, RULES
    out = {name: name for name in NAMED}
    out["z-box"] = [lf.ZBox(-5.0, 5.0), "epsilon", "epsilon"]
    for name in COMPOSITES:
        out[name] = (lf.composite(name, low=-5.0, high=5.0) if needs_bounds(name) else name)
    assert set(out) == set(RULES) | set(COMPOSITES)
    return out


@pytest.mark.parametrize("name, rule", list(_every_rule().items()))
def test_conservation_table_keeps_every_layer_description(name, rule):
    # the demo's network
    net = lf.Network(lf.datasets.SHAPE, [lf.Dense(16, "relu"), lf.Dense(12, "relu"),
                                         lf.Dense(2, "linear"), lf.SoftMax()], seed=0)
    x = lf.datasets.blobs(1, 0.05, seed=1, cls=1)[0][0]
    text = lf.lrp_report(net, x, rule=rule)
    assert max(len(line) for line in text.splitlines()) <= 100
    table = text.split("(a) Relevance conservation")[1].split("Max conservation")[0]
    rows = [line for line in table.splitlines() if line[2:3].isdigit()]
    assert len(rows) == len(net.layers)
    for k, layer in enumerate(net.layers):
        row = next(r for r in rows if r.startswith(f"  {k} "))
        assert row.startswith(f"  {k} {layer.describe()} "), row
        assert "~" not in row
    # an abbreviated rule name is spelled out in a legend line
    for short in re.findall(r"\s(\S+\.)\s", "\n".join(rows)):
        assert re.search(rf"rules: .*{re.escape(short)} = ", table), table
