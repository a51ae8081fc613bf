"""The ``lrpfast`` command.

``lrpfast demo [--seed N] [--save PATH] [--verbose] [--png DIR]``
    The example of the original ``LRPReport`` (``TNNet.LRPReport`` of a Pascal
    library): train a small dense classifier on the 6x6 two-blob task, then
    report LRP on a clean class-0 probe, a noisy class-1 probe, and the three
    rules side by side.

``lrpfast explain MODEL PROBE.npy [--rule R] [--eps E] [--gamma G] [--alpha A]
[--low L] [--high H] [--top-k K] [--class C] [--absorb-bias] [--png FILE]``
    Print :func:`lrpfast.lrp_report` for a saved model and a probe.  ``--rule``
    takes every rule name and composite; ``--low``/``--high`` are the z-box
    bounds of ``z-box`` and ``epsilon-gamma-box``.

``lrpfast evaluate MODEL DATA.npy [--rules R1,R2] [--features-per-step K]
[--region H W] [--baseline zero|mean|VALUE] [--score probability|logit] [--max-rows N]
[--png FILE]``
    Print :func:`lrpfast.evaluate.compare_rules` (pixel-flipping AOPC per rule).

``lrpfast explain MODEL DATA.npy --out OUT.npz [--chunk-size N] [--progress]``
    Explain a batch file (a leading batch axis) chunk by chunk, memory-mapped,
    into ``OUT.npy`` (relevance) or ``OUT.npz`` (relevance, explained_class,
    logits, max_residual), written atomically; then print a one-line summary.

``--png`` draws pictures with :mod:`lrpfast.plot` (needs the ``[plot]`` extra,
matplotlib; without it the command fails at once, naming the extra).

Every user error (a missing file, a probe of the wrong shape, a bad option)
is one line on stderr and exit code 2, without a traceback; every warning
(a Python ``warnings.warn`` during the command, or an option that the chosen
``--rule`` does not use) is one line ``lrpfast COMMAND: warning: ...``.
``lrpfast`` alone prints the help on stderr and exits with code 2.  Output
fits 100 columns; a reader that goes away (``| head``) ends the command
quietly with code 0.  :func:`main`
returns the exit code; the console script ``lrpfast`` and
``python -m lrpfast`` exit with it.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import warnings

import numpy as np

from . import datasets
from ._validation import check_class, check_int, check_out_file, check_real
from .explain import explain, explain_batch
from .layers import Dense, SoftMax
from .network import Network, load
from .rules import DEFAULTS as RULE_DEFAULTS, NAMED, RULES, check_params, make_rule
from .composites import COMPOSITES, Composite, composite, needs_bounds
from .report import (RAMP, WIDTH, ascii_probe, bucket_map,
                     format_position, render_report, sign_map, top_positions)
from .train import Trainer

__all__ = ["MODEL_LOADERS", "load_model", "main", "run_demo"]


# ---------------------------------------------------------------------------
# Model loading: by file extension, so other formats plug in.
# ---------------------------------------------------------------------------

def _load_onnx(path):
    try:
        from .interop import from_onnx
    except ImportError as exc:
        raise ImportError(
            f"reading .onnx models needs lrpfast.interop and the onnx package ({exc})"
        ) from None
    return from_onnx(path)


#: Model readers by lower-case file extension; anything else is an lrpfast
#: ``.npz`` read by :func:`lrpfast.load`.
MODEL_LOADERS = {".onnx": _load_onnx}


def load_model(path):
    """Load a model for the CLI, choosing the reader by file extension.

    ``.onnx`` goes through ``lrpfast.interop.from_onnx`` (imported only
    then); every other extension through :func:`lrpfast.load`.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    Network
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MODEL: no such file: {path!r}")
    ext = os.path.splitext(path)[1].lower()
    return MODEL_LOADERS.get(ext, load)(path)


def _load_probe(path, what="PROBE", mmap_mode=None):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what}: no such file: {path!r}")
    try:
        data = np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{what}: {path!r} is not a readable .npy file ({exc})") from None
    if not isinstance(data, np.ndarray):
        data.close()
        raise ValueError(f"{what}: {path!r} is an .npz archive; save the array with np.save")
    return data


# ---------------------------------------------------------------------------
# The demo.
# ---------------------------------------------------------------------------

DEMO_EPOCHS = 150
DEMO_BATCH = 24
DEMO_NOISE = 0.1
DEMO_RULES = ("epsilon", "gamma", "alpha-beta")
DEMO_FLIP_PROBES = 200


def _faithfulness(net, X, rules):
    """Mean MoRF AOPC per rule label on the probes ``X`` (pixel flipping to 0)."""
    from .evaluate import pixel_flipping

    out = {}
    for rule in rules:
        res = pixel_flipping(net, X, explain_batch(net, X, rule=rule), order="morf")
        out[res.label] = float(res.aopc.mean())
    return out


def _banner(title):
    return f"\n{'=' * 8} {title} {'=' * max(3, 70 - len(title))}"


def _blob_share(relevance, cls):
    a = np.abs(np.asarray(relevance, dtype=np.float64))
    total = a.sum()
    return float(a[datasets.blob_mask(cls)].sum() / total) if total > 0 else 0.0


def _blob_hits(relevance, cls, k=4):
    """Of the top-``k`` positions by ``|R|``, how many lie on the blob of ``cls``.

    Returns ``(positive, negative)``: a blob pixel counts as evidence found
    (``positive``) only when its relevance speaks for the class (``R > 0``);
    blob pixels with ``R < 0`` speak against it and are counted apart.
    """
    blob = datasets.blob_mask(cls).ravel()
    on = [v for f, v, _ in top_positions(relevance, k) if blob[f]]
    return sum(v > 0 for v in on), sum(v < 0 for v in on)


def _hits_text(hits, k):
    pos, neg = hits
    return f"{pos}/{k}" + (f" (+{neg} negative)" if neg else "")


def _hits_cell(hits):
    pos, neg = hits
    return f"{pos} positive" + (f", {neg} negative" if neg else "")


def _columns(rows, title_width=16):
    """``rows`` of ``(title, cells)`` as a table of columns within 100 columns.

    Every row has one cell per column.  Columns that do not fit beside the
    first ones continue in a further block below (so more rules, or wider
    cells, never widen the text).
    """
    n = len(rows[0][1])
    widths = [max(len(cells[j]) for _, cells in rows) + 2 for j in range(n)]
    blocks, current, used = [], [], 2 + title_width
    for j, w in enumerate(widths):
        if current and used + w > WIDTH:
            blocks.append(current)
            current, used = [], 2 + title_width
        current.append(j)
        used += w
    blocks.append(current)
    lines = []
    for k, block in enumerate(blocks):
        if k:
            lines.append("")
        for title, cells in rows:
            line = f"  {title:<{title_width}}" + "".join(
                f"{cells[j]:<{widths[j]}}" for j in block)
            lines.append(line.rstrip())
    return lines


def _map_cells(relevance):
    """One ``|R|`` and sign cell pair per row of the 6x6 plane."""
    buckets = bucket_map(relevance).reshape(datasets.SHAPE)[0]
    signs = sign_map(relevance).reshape(datasets.SHAPE)[0]
    return ["|" + "".join(RAMP[b] for b in buckets[y]) + "|  |" + "".join(signs[y]) + "|"
            for y in range(buckets.shape[0])]


def _contrast_rows(exps, top_k=6, morf_aopc=None):
    """The RULE CONTRAST table as ``(title, cells)`` rows, one cell per rule.

    ``morf_aopc`` (rule label -> mean MoRF AOPC) adds the faithfulness row.
    """
    names = [e.rule.split(" (")[0] for e in exps]
    params = [e.rule[len(n):].strip(" ()") or "-" for n, e in zip(names, exps)]
    rows = [("rule", names),
            ("parameters", params),
            ("class", [f"{e.explained_class} (logit {e.logit:+.4f})" for e in exps]),
            ("max residual", [f"{e.max_residual:.3e}" for e in exps]),
            ("verdict", [e.verdict.split(":")[0] for e in exps]),
            ("top-left blob", [f"{100 * _blob_share(e.relevance, 0):.1f}% of sum|R|"
                               for e in exps]),
            ("top-4 on blob", [_hits_cell(_blob_hits(e.relevance, 0)) for e in exps])]
    if morf_aopc is not None:
        rows.append(("MoRF AOPC", [f"{morf_aopc[e.rule]:.3f}" for e in exps]))
    rows += [("", [""] * len(exps)),
             ("|R|, sign  x ->", [" 012345    012345"] * len(exps))]
    maps = [_map_cells(e.relevance) for e in exps]
    rows += [(f"y = {y}", [m[y] for m in maps]) for y in range(len(maps[0]))]
    rows += [("", [""] * len(exps)),
             (f"top-{top_k} by |R|", ["(c, x, y)  relevance"] * len(exps))]
    tops = [top_positions(e.relevance, top_k) for e in exps]
    for rank in range(top_k):
        rows.append((f"{rank + 1}", [f"{format_position(t[rank][0], datasets.SHAPE)}  "
                                     f"{t[rank][1]:+.4e}" for t in tops]))
    return rows


_EXPECT = """\
LRP is not a gradient: it hands the explained logit back through the network under a
conservation rule.  Each table checks the bookkeeping: a boundary may lose relevance only to
the shares its rule allows (the epsilon and gamma stabiliser, O(eps); biases with
--absorb-bias; degenerate alpha-beta neurons), and any other residual is FLAGGED.  The
SoftMax has no LRP rule: it passes relevance unchanged and is listed as SKIPPED.

Relevance is signed: positive relevance speaks for the explained class, negative relevance
against it.  A pixel can lie on the blob of the class and still carry negative relevance, so
the counts here take a top pixel as evidence found only when it lies on the blob AND its
relevance is positive; blob pixels with negative relevance are counted apart ("+1 negative").

On the clean class-0 probe, epsilon and gamma put the top-4 relevance on the four top-left
blob pixels; gamma leans to positive evidence.  Alpha-beta (alpha=2, beta=1) conserves
relevance exactly but amplifies it, and hands each neuron's negative share to whatever inputs
push against it, so pixels (on the blob too) can carry large negative relevance.  The noisy
class-1 probe has three times the training noise: the largest |R| sits on the bottom-right
blob, but its pixels can carry both signs, and positive relevance can leak onto the noise.
Read the map as "these pixels mattered most", and each sign as the direction of its share."""


def run_demo(seed=2026, save=None, out=None, verbose=False, png=None):
    """Run the demo, writing its text to ``out`` (default ``sys.stdout``).

    Every line fits 100 columns.

    Parameters
    ----------
    seed : int, default 2026
        Seeds one ``numpy.random.Generator`` that draws, in order, the
        initial weights, every epoch's fresh samples and shuffle, and the two
        probes.
    save : str or None
        Save the trained model there (``.npz``).  The file is written before
        anything is printed, so a closed pipe (``lrpfast demo --save m.npz |
        head``) cannot stop it.
    out : file-like, optional
    verbose : bool, default False
        Also print the full report of probe 1 under every contrasted rule.
    png : str or None
        Also draw the pictures into this folder (see :func:`_demo_pngs`).

    Returns
    -------
    dict
        The outcomes the demo checks: ``train_accuracy`` (last epoch),
        ``probe1_class``, ``probe2_class``; ``probe1_on_blob`` (per rule, how
        many of the top-4 positions by ``|R|`` lie on the top-left blob *with
        positive relevance*) and ``probe1_against`` (per rule, top-4 blob
        pixels with negative relevance); ``probe2_on_blob`` and
        ``probe2_against`` (the same for the bottom-right blob, as ``(k of
        top-2, k of top-4)``); ``max_residual`` (per rule, probe 1),
        ``healthy`` (every verdict of the demo), ``seconds``.
    """
    out = sys.stdout if out is None else out
    t0 = time.perf_counter()

    def say(*lines):
        for line in lines:
            print(line, file=out)

    # One Generator drives everything, in order: initial weights, then each
    # epoch's fresh samples and shuffle, then the two probes.
    rng = np.random.default_rng(seed)
    net = Network(datasets.SHAPE, [Dense(16, "relu"), Dense(12, "relu"),
                                   Dense(2, "linear"), SoftMax()], seed=rng)
    head = [f"lrpfast demo: Layer-wise Relevance Propagation on the 6x6 two-blob task "
            f"(seed {seed})",
            "  class 0 = bright 2x2 blob top-left, class 1 = bottom-right, background "
            "noise U(0, noise)",
            "  network: " + " -> ".join(["36"] + [l.describe() for l in net.layers]),
            f"  training: {DEMO_EPOCHS} epochs of {DEMO_BATCH} fresh samples at noise "
            f"{DEMO_NOISE},",
            "            SGD lr=0.01 momentum=0.9, softmax cross-entropy",
            ""]
    trainer = Trainer(net, batch_size=DEMO_BATCH, lr=0.01, momentum=0.9, seed=rng)
    for epoch in range(1, DEMO_EPOCHS + 1):
        _, acc = trainer.epoch(*datasets.blobs(DEMO_BATCH, DEMO_NOISE, seed=rng))
        if epoch == 1 or epoch % 50 == 0 or epoch == DEMO_EPOCHS:
            head.append(f"epoch {epoch}  train-acc={acc:.3f}")
    # Save before the first print: a reader that goes away (| head) raises
    # BrokenPipeError at a print, and the model must be on disk by then.
    if save is not None:
        net.save(save)
        head.append(f"model saved to {save}")
    say(*head)
    x1 = datasets.blobs(1, 0.05, seed=rng, cls=0)[0][0]
    x2 = datasets.blobs(1, 0.30, seed=rng, cls=1)[0][0]
    outcome = {"train_accuracy": trainer.history.accuracy[-1]}
    healthy = []
    probe_exps = []          # the epsilon explanations of probes 1 and 2 (for --png)

    for n, (x, cls, noise, blob) in enumerate(
            [(x1, 0, 0.05, "top-left"), (x2, 1, 0.30, "bottom-right")], 1):
        kind = "clean" if n == 1 else "noisy"
        say(_banner(f"PROBE {n}: a {kind} class-{cls} sample (noise {noise:.2f})"),
            ascii_probe(x, title=f"probe {n}"), "")
        e = explain(net, x, rule="epsilon")
        probe_exps.append(e)
        healthy.append(e.healthy)
        r = e.relevance.astype(np.float64)
        on_blob = float(r[datasets.blob_mask(cls)].sum())
        pos, neg = _blob_hits(r, cls, 4)
        say(render_report(net, e, top_k=8).rstrip(), "",
            f"On the {blob} blob (where the class-{cls} evidence is): "
            f"{100 * _blob_share(r, cls):.1f}% of sum|R|;",
            f"  signed, sum R on the blob = {on_blob:+.4f} of sum R = {r.sum():+.4f};",
            f"  top-4 by |R|: {pos + neg} on the blob, {pos} positive (for class {cls}), "
            f"{neg} negative (against it)")
        outcome[f"probe{n}_class"] = e.explained_class
        if n == 2:
            top2, top4 = _blob_hits(r, 1, 2), (pos, neg)
            outcome["probe2_on_blob"] = (top2[0], top4[0])
            outcome["probe2_against"] = (top2[1], top4[1])

    say(_banner("RULE CONTRAST: probe 1 under three rules, top-6"))
    # probe 1 under epsilon is explained above already
    exps = [probe_exps[0] if r == "epsilon" else explain(net, x1, rule=r) for r in DEMO_RULES]
    healthy += [e.healthy for e in exps[1:]]
    flip_probes = datasets.blobs(DEMO_FLIP_PROBES, DEMO_NOISE, seed=rng)[0]
    morf = _faithfulness(net, flip_probes, DEMO_RULES)
    outcome["morf_aopc"] = {r: morf[e.rule] for r, e in zip(DEMO_RULES, exps)}
    say(*_columns(_contrast_rows(exps, morf_aopc=morf)))
    say("", "  Each |R| map is scaled to its own max|R|; sign '.' where |R| < 1% of max|R|.",
        f"  MoRF AOPC: mean drop of p(class) on {DEMO_FLIP_PROBES} fresh probes as pixels "
        "are zeroed, most relevant",
        "  first (higher = the decisive pixels are found sooner; `lrpfast evaluate` "
        "compares rules).")
    if verbose:
        for rule, e in zip(DEMO_RULES, exps):
            if rule != "epsilon":   # probe 1's report above is the epsilon one
                say(_banner(f"FULL REPORT: probe 1, {rule}"), render_report(net, e).rstrip())
    hits = {r: _blob_hits(e.relevance, 0) for r, e in zip(DEMO_RULES, exps)}
    outcome["probe1_on_blob"] = {r: h[0] for r, h in hits.items()}
    outcome["probe1_against"] = {r: h[1] for r, h in hits.items()}
    outcome["max_residual"] = {r: e.max_residual for r, e in zip(DEMO_RULES, exps)}
    outcome["healthy"] = all(healthy)

    top4 = ", ".join(f"{r} {_hits_text(h, 4)}" for r, h in hits.items())
    p2 = [(outcome["probe2_on_blob"][i], outcome["probe2_against"][i]) for i in (0, 1)]
    say(_banner("WHAT TO EXPECT"), _EXPECT, "",
        "Outcome (a top pixel counts when it lies on the blob with positive relevance):",
        f"  training      train-acc={outcome['train_accuracy']:.3f}",
        f"  probe 1       class {outcome['probe1_class']}; top-4 on the top-left blob:",
        f"                {top4}",
        f"  probe 2       class {outcome['probe2_class']}; on the bottom-right blob: "
        f"top-2 {_hits_text(p2[0], 2)}, top-4 {_hits_text(p2[1], 4)}",
        f"  conservation  "
        f"{'healthy everywhere' if outcome['healthy'] else 'FLAGGED (see above)'}")
    if not verbose:
        say("", "(lrpfast demo --verbose adds the full reports of probe 1 under gamma and alpha-beta.)")
    if png is not None:
        files = _demo_pngs(png, net, x1, probe_exps[0], x2, probe_exps[1], DEMO_RULES,
                           flip_probes=flip_probes)
        say("", f"pictures written to {png}:", "  " + ", ".join(files))
    outcome["seconds"] = time.perf_counter() - t0
    return outcome


def _demo_pngs(folder, net, x1, e1, x2, e2, rules, flip_probes=None, dpi=100):
    """Draw the demo's pictures into ``folder``; return the file names written.

    ``probe1.png`` and ``probe2.png`` are the heatmaps of the two epsilon
    explanations beside their probes, ``rule_contrast.png`` probe 1 under
    ``rules``, each on its own symmetric scale (as the text's maps), and
    with ``flip_probes`` (a batch; the demo passes the probes of its MoRF AOPC
    row) ``flip_curves.png``, the mean pixel-flipping curves of ``rules``
    (:func:`lrpfast.evaluate.compare_rules`).
    """
    from . import plot
    from .evaluate import compare_rules

    figures = {
        "probe1.png": plot.heatmap(e1, probe=x1),
        "probe2.png": plot.heatmap(e2, probe=x2),
        "rule_contrast.png": plot.rule_contrast(net, x1, list(rules), shared_scale=False),
    }
    if flip_probes is not None:
        figures["flip_curves.png"] = plot.flip_curves(
            compare_rules(net, flip_probes, list(rules)))
    for name, fig in figures.items():
        fig.savefig(os.path.join(folder, name), dpi=dpi)
    return list(figures)


def _png_target(path, option):
    """Fail early (before any work) when ``path`` cannot take a PNG file."""
    from . import plot

    plot.require()
    check_out_file(path, option)


# ---------------------------------------------------------------------------
# Argument parsing with one-line errors.
# ---------------------------------------------------------------------------

class _UsageError(Exception):
    def __init__(self, prog, message):
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (no usage dump) and exit 2."""

    def error(self, message):
        # argparse's "argument --x: invalid choice: 'y' (choose from ...)" can
        # run past 100 columns: the choices are in --help.
        message = message.removeprefix("argument ")
        if "invalid choice" in message and len(f"{self.prog}: error: {message}") > WIDTH:
            message = message.split(" (choose from")[0] + f" (see {self.prog} --help)"
        raise _UsageError(self.prog, message)


_RULE_CHOICES = NAMED + ("z-box",) + tuple(COMPOSITES)


def _build_parser():
    parser = _Parser(
        prog="lrpfast",
        description="Layer-wise Relevance Propagation for dense networks.",
        epilog="Run 'lrpfast COMMAND --help' for the options of a command.")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"lrpfast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo", help="train on the 6x6 blob task and print LRP reports",
        description="The example of the original LRPReport (TNNet.LRPReport of a "
                    "Pascal neural-network library), end to end: train 36 -> 16 (ReLU) "
                    "-> 12 (ReLU) -> 2 -> SoftMax for 150 epochs of 24 fresh blob "
                    "samples, then explain a clean class-0 probe, a noisy class-1 probe, "
                    "and contrast the epsilon, gamma and alpha-beta rules.")
    demo.add_argument("--seed", type=int, default=2026,
                      help="seed of weights, data and probes (default: 2026)")
    demo.add_argument("--save", metavar="PATH",
                      help="save the trained model to PATH (.npz), before printing")
    demo.add_argument("--verbose", action="store_true",
                      help="also print the full reports of probe 1 under gamma and "
                           "alpha-beta")
    demo.add_argument("--png", metavar="DIR",
                      help="also draw probe1.png, probe2.png, rule_contrast.png and "
                           "flip_curves.png into DIR (created if missing; needs matplotlib: "
                           "pip install \"lrpfast[plot]\")")

    ex = sub.add_parser(
        "explain", help="print the LRP report of a saved model for one probe",
        description="Print lrp_report() for MODEL (an lrpfast .npz, or .onnx through\n"
                    "lrpfast.interop) and PROBE.npy (one probe of the model's input shape,\n"
                    "saved with numpy.save); or, with --out, explain a whole batch file.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n"
               "  lrpfast demo --save model.npz\n"
               "  python -c \"import numpy as np, lrpfast.datasets as d; \\\n"
               "      np.save('probe.npy', d.blobs(1, 0.05, seed=1, cls=1)[0][0])\"\n"
               "  lrpfast explain model.npz probe.npy --rule gamma --top-k 4\n"
               "  lrpfast explain model.npz batch.npy --out explanations.npz --progress\n\n"
               "Errors (missing file, wrong probe shape, bad option) print one line "
               "and exit with code 2.")
    ex.add_argument("model", metavar="MODEL", help="model file (.npz or .onnx)")
    ex.add_argument("probe", metavar="PROBE.npy", help="probe array (.npy)")
    ex.add_argument("--rule", choices=_RULE_CHOICES, default="epsilon", metavar="R",
                    help="dense-layer rule: " + ", ".join(_RULE_CHOICES[:-len(COMPOSITES)])
                    + " (z-box: on the first Dense layer, epsilon above), or a "
                    "composite: " + ", ".join(COMPOSITES) + " (default: epsilon)")
    # None marks "not given": an option that the rule does not use is warned
    # about only when given; the rule defaults (RULE_DEFAULTS) fill in the rest.
    ex.add_argument("--eps", type=float, default=None, metavar="E",
                    help="stabiliser of epsilon, gamma, gamma-generalized, > 0 (default: 0.01)")
    ex.add_argument("--gamma", type=float, default=None, metavar="G",
                    help="gamma of gamma and gamma-generalized, >= 0 (default: 0.25)")
    ex.add_argument("--alpha", type=float, default=None, metavar="A",
                    help="alpha of the alpha-beta rule, >= 1; beta = alpha - 1 "
                         "(default: 2)")
    ex.add_argument("--low", type=float, default=None, metavar="L",
                    help="lower z-box bound of every input (z-box, epsilon-gamma-box)")
    ex.add_argument("--high", type=float, default=None, metavar="H",
                    help="upper z-box bound of every input (z-box, epsilon-gamma-box)")
    ex.add_argument("--top-k", type=int, default=8, metavar="K",
                    help="rows of the top-K table, >= 1 (default: 8)")
    ex.add_argument("--class", dest="forced_class", type=int, default=None,
                    metavar="C", help="explain class C instead of the argmax")
    ex.add_argument("--absorb-bias", action="store_true",
                    help="let biases take part in the denominators")
    ex.add_argument("--png", metavar="FILE",
                    help="also draw the relevance heatmap beside the probe to FILE "
                         "(needs matplotlib: pip install \"lrpfast[plot]\")")
    stream = ex.add_argument_group(
        "batch files", "PROBE.npy may hold a batch (B, *input_shape): with --out it is\n"
                       "explained chunk by chunk, memory-mapped, and written atomically")
    stream.add_argument("--out", metavar="OUT",
                        help="OUT.npy receives the relevance; OUT.npz relevance, "
                             "explained_class, logits and max_residual")
    stream.add_argument("--chunk-size", type=int, default=None, metavar="N",
                        help="rows per chunk (default: about 16 MB of activations)")
    stream.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar on stderr (default: when stderr is a terminal)")
    _add_evaluate_parser(sub)
    return parser


def _add_evaluate_parser(sub):
    ev = sub.add_parser(
        "evaluate", help="compare LRP rules by pixel flipping (MoRF/LeRF/random AOPC)",
        description="Explain every row of DATA.npy under each rule, replace features by the "
                    "baseline in\nrelevance order (most relevant first, least relevant "
                    "first, random) and print\nthe AOPC of each rule "
                    "(lrpfast.evaluate.compare_rules).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n"
               "  lrpfast demo --save model.npz\n"
               "  python -c \"import numpy, lrpfast.datasets as d; "
               "numpy.save('data.npy', d.blobs(200, 0.1)[0])\"\n"
               "  lrpfast evaluate model.npz data.npy --rules epsilon,gamma\n\n"
               "Errors (missing file, wrong data shape, bad option) print one line "
               "and exit with code 2.")
    ev.add_argument("model", metavar="MODEL", help="model file (.npz or .onnx)")
    ev.add_argument("data", metavar="DATA.npy",
                    help="probes (.npy) of shape (B, *input shape)")
    ev.add_argument("--rules", default="epsilon,gamma,alpha-beta", metavar="R1,R2,...",
                    help="comma-separated rule or composite names, as --rule of explain: "
                         + ", ".join(_RULE_CHOICES) + " (default: epsilon,gamma,alpha-beta)")
    ev.add_argument("--features-per-step", type=int, default=1, metavar="K",
                    help="features (or tiles) replaced per step, >= 1 (default: 1)")
    ev.add_argument("--steps", type=int, default=None, metavar="T",
                    help="stop after T steps (default: until all are replaced)")
    ev.add_argument("--region", type=int, nargs=2, default=None, metavar=("H", "W"),
                    help="replace H x W tiles (all channels) instead of single features")
    ev.add_argument("--baseline", default="zero", metavar="zero|mean|VALUE",
                    help="value of a replaced feature: 0, the per-feature mean of DATA, "
                         "or a number (default: zero)")
    ev.add_argument("--score", choices=("probability", "logit"), default="probability",
                    help="score followed along the curve (default: probability)")
    ev.add_argument("--max-rows", type=int, default=None, metavar="N",
                    help="use the first N rows of DATA only")
    ev.add_argument("--seed", type=int, default=0,
                    help="seed of the random order (default: 0)")
    ev.add_argument("--eps", type=float, default=RULE_DEFAULTS["eps"], metavar="E",
                    help="epsilon/gamma stabiliser, > 0 (default: 0.01)")
    ev.add_argument("--gamma", type=float, default=RULE_DEFAULTS["gamma"], metavar="G",
                    help="gamma of the gamma rule, >= 0 (default: 0.25)")
    ev.add_argument("--alpha", type=float, default=RULE_DEFAULTS["alpha"], metavar="A",
                    help="alpha of the alpha-beta rule, >= 1 (default: 2)")
    ev.add_argument("--low", type=float, default=None, metavar="L",
                    help="lower z-box bound of every input (z-box, epsilon-gamma-box)")
    ev.add_argument("--high", type=float, default=None, metavar="H",
                    help="upper z-box bound of every input (z-box, epsilon-gamma-box)")
    ev.add_argument("--png", metavar="FILE",
                    help="also draw the mean flipping curves per rule to FILE (needs "
                         "matplotlib: pip install \"lrpfast[plot]\")")


def _cmd_evaluate(args):
    from .evaluate import compare_rules

    rules = [r.strip() for r in args.rules.split(",")]
    if not all(rules):
        raise ValueError(f"--rules must be comma-separated rule names, got {args.rules!r}")
    unknown = [r for r in rules if r not in _RULE_CHOICES]
    if unknown:
        raise ValueError(f"--rules: unknown rule {unknown[0]!r}; see lrpfast evaluate --help")
    _check_bounds_given(args, rules, "--rules")
    check_int(args.features_per_step, "--features-per-step", low=1)
    if args.steps is not None:
        check_int(args.steps, "--steps", low=1)
    if args.max_rows is not None:
        check_int(args.max_rows, "--max-rows", low=1)
    check_int(args.seed, "--seed", low=0)
    if args.baseline == "zero":
        baseline = 0.0
    elif args.baseline == "mean":
        baseline = "mean"
    else:
        try:
            baseline = float(args.baseline)
        except ValueError:
            raise ValueError(f"--baseline must be zero, mean or a number, got "
                             f"{args.baseline!r}") from None
        check_real(baseline, "--baseline")
    if args.png is not None:
        _png_target(args.png, "--png")
    net = load_model(args.model)
    data = _load_probe(args.data, "DATA")
    _, single = net._as_batch(data, "DATA")
    if single:
        data = data[None]
    if args.max_rows is not None:
        data = data[:args.max_rows]
    params = dict(eps=args.eps, gamma=args.gamma, alpha=args.alpha)
    check_params(params, prefix="--")       # before any rule is built from them
    rules = [_named_rule(r, args, net, params, "--rules") for r in rules]
    try:
        cmp = compare_rules(net, data, rules, eps=args.eps, gamma=args.gamma,
                            alpha=args.alpha, features_per_step=args.features_per_step,
                            steps=args.steps, baseline=baseline, score=args.score,
                            seed=args.seed,
                            region=None if args.region is None else tuple(args.region))
    except (ValueError, TypeError) as exc:
        # name the options, not the Python arguments
        msg = str(exc)
        for py, opt in (("features_per_step", "--features-per-step"),
                        ("region", "--region"), ("baseline", "--baseline"),
                        ("rule:", "--rules:"), ("rule ", "--rules ")):
            if msg.startswith(py):
                msg = opt + msg[len(py):]
                break
        raise type(exc)(msg) from None
    print(cmp.table())
    if args.png is not None:
        from . import plot

        plot.flip_curves(cmp).savefig(args.png, dpi=100)


def _cmd_demo(args):
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    if args.save is not None:
        check_out_file(args.save, "--save")       # fail before training, not after
    if args.png is not None:
        from . import plot

        plot.require()
        if os.path.exists(args.png) and not os.path.isdir(args.png):
            raise NotADirectoryError(f"--png: {args.png!r} is a file, not a folder")
        os.makedirs(args.png, exist_ok=True)
    run_demo(seed=args.seed, save=args.save, verbose=args.verbose, png=args.png)


#: Defaults of the rule options of ``lrpfast explain`` (those of lrpfast.explain).


def _rule_options(rule):
    """The options among ``RULE_DEFAULTS`` that the rule named ``rule`` reads.

    Asked of the rule object (``Rule.uses()``), so new rules need no entry
    here; None when the name makes no single rule.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")      # only asking, not explaining
            obj = make_rule(rule, **RULE_DEFAULTS)
        names = set(obj.uses())
    except (TypeError, ValueError):
        return None
    return [name for name in RULE_DEFAULTS if name in names]


def _rule_params(args):
    """Validated keyword arguments for the rule; warns about unused options."""
    given = {name: getattr(args, name) for name in RULE_DEFAULTS
             if getattr(args, name) is not None}
    # Validate with the option names, so messages speak the CLI's language.
    check_params(given, prefix="--")
    used = _rule_options(args.rule)
    if used is None:
        return given
    for name in given:
        if name not in used:
            uses = " and ".join(f"--{u}" for u in used) or "none of --eps, --gamma, --alpha"
            warnings.warn(f"--{name} {given[name]:g} is ignored: the {args.rule} rule "
                          f"does not use it (it uses {uses})", UserWarning, stacklevel=2)
    return {name: value for name, value in given.items() if name in used}


def _cmd_explain(args):

    params = _rule_params(args)
    check_int(args.top_k, "--top-k", low=1)
    if args.png is not None:
        _png_target(args.png, "--png")
    net = load_model(args.model)
    if args.forced_class is not None:
        check_class(args.forced_class, "--class", net.n_outputs)
    rule = _cli_rule(args, net, params)
    if isinstance(rule, Composite):     # --eps, --gamma, --alpha are in it already
        params = {}
    if args.out is not None or args.chunk_size is not None:
        return _cmd_explain_batch(args, net, rule, params)
    probe = _load_probe(args.probe)
    _, single = net._as_batch(probe, "PROBE")
    if not single:
        raise ValueError(f"PROBE must hold one probe, got a batch {probe.shape}: "
                         "use --out OUT.npz")
    e = explain(net, probe, rule=rule, forced_class=args.forced_class,
                absorb_bias=args.absorb_bias, **params)
    print(render_report(net, e, top_k=args.top_k), end="")
    if args.png is not None:
        from . import plot

        plot.heatmap(e, probe=probe).savefig(args.png, dpi=100)


def _cmd_explain_batch(args, net, rule, params):
    """``explain ... --out OUT``: stream a batch file through explain_batch."""
    from ._stream import explain_file, format_summary

    if args.out is None:
        raise ValueError("--chunk-size needs --out OUT.npy or OUT.npz")
    if args.png is not None:
        raise ValueError("--png draws the heatmap of one probe; it does not combine "
                         "with --out (a batch streamed to a file)")
    if args.chunk_size is not None:
        check_int(args.chunk_size, "--chunk-size", low=1)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    data = _load_probe(args.probe, "DATA", mmap_mode="r")
    summary = explain_file(
        net, data, args.out, chunk_size=args.chunk_size, progress=progress, name="DATA",
        rule=rule, forced_class=args.forced_class, absorb_bias=args.absorb_bias, **params)
    print(format_summary(summary))


def _cli_rule(args, net, params):
    """The ``rule=`` of ``--rule`` with ``--low``/``--high`` (z-box bounds)."""
    _check_bounds_given(args, [args.rule], "--rule")
    return _named_rule(args.rule, args, net, params, "--rule")


def _bounded():
    """The names of ``--rule``/``--rules`` that need ``--low``/``--high`` (from the registries)."""
    return [name for name in _RULE_CHOICES if needs_bounds(name)]


def _check_bounds_given(args, names, option):
    """Refuse ``--low``/``--high`` when none of ``names`` takes them."""
    given = [o for o, v in (("--low", args.low), ("--high", args.high)) if v is not None]
    if given and not any(needs_bounds(n) for n in names):
        raise ValueError(f"{' and '.join(given)} apply only to {option} "
                         f"{' and '.join(_bounded())}, not {','.join(names)}")


def _named_rule(name, args, net, params, option):
    """The ``rule=`` for one rule or composite name of the command line.

    A name that needs z-box bounds (:func:`lrpfast.composites.needs_bounds`)
    gets ``--low``/``--high``: a composite is built with them, a bounded rule
    (z-box) goes on the first Dense layer with epsilon above.  Any other name
    is returned as it is.
    """
    if not needs_bounds(name):
        return name
    missing = [o for o, v in (("--low", args.low), ("--high", args.high)) if v is None]
    if missing:
        raise ValueError(f"{option} {name} needs the z-box bounds {' and '.join(missing)}")
    check_real(args.low, "--low")
    check_real(args.high, "--high")
    if not args.low < args.high:
        raise ValueError(f"--low must be < --high, got {args.low:g} and {args.high:g}")
    if name in COMPOSITES:
        return composite(name, low=args.low, high=args.high, **params)
    return [RULES[name](args.low, args.high)] + ["epsilon"] * (net._n_dense - 1)


_COMMANDS = {"demo": _cmd_demo, "explain": _cmd_explain, "evaluate": _cmd_evaluate}


def main(argv=None):
    """Run the ``lrpfast`` command; return its exit code.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success (also when the reader of the output goes away), 2 on a
        usage or input error (one line on stderr) and for ``lrpfast`` without
        a command (the help, on stderr).
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        return _fail(exc.prog, str(exc))
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    prog = f"lrpfast {args.command}"

    def one_line(message, category, filename, lineno, file=None, line=None):
        print(f"{prog}: warning: {' '.join(str(message).split())}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = one_line
            _COMMANDS[args.command](args)
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``lrpfast demo | head``): not an error of ours.
        # Point stdout at devnull so the interpreter's final flush is silent.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (OSError, ValueError, TypeError, ImportError, FloatingPointError) as exc:
        return _fail(prog, str(exc) or type(exc).__name__)
    except KeyboardInterrupt:
        return _fail(prog, "interrupted", code=130)
    return 0


def _fail(prog, message, code=2):
    print(_error_line(prog, message), file=sys.stderr)
    return code


def _error_line(prog, message):
    """``PROG: error: MESSAGE`` on one line, fitted to 100 columns where it can be.

    A long line names a quoted path by its last two parts, or its last (the
    user typed the path), then drops trailing details: a closing ``(...)`` (a library's
    explanation of why a file did not parse) or a last ``"; ..."`` clause.
    """
    line = f"{prog}: error: {' '.join(message.split())}"
    if len(line) > WIDTH:
        line = re.sub(r"'[^' ]*/([^'/ ]+/[^'/ ]+)'", r"'.../\1'", line)
    if len(line) > WIDTH:
        line = re.sub(r"'[^' ]*/([^'/ ]+)'", r"'\1'", line)
    while len(line) > WIDTH and line.endswith(")"):
        depth, k = 0, len(line)
        while k > 0:
            k -= 1
            depth += {")": 1, "(": -1}.get(line[k], 0)
            if depth == 0:
                break
        if line[k - 1:k + 1] != " (" or k - 1 <= len(prog) + 9:
            break
        line = line[:k - 1]
    return line
