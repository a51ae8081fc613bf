"""Regenerate the pictures of the README: ``python docs/make_figures.py``.

Writes, next to this file (dpi 100):

* ``heatmap.png``: the demo's clean class-0 probe and its epsilon relevance
  (``lrpfast demo --png`` draws the same picture);
* ``rule_contrast.png``: that probe under epsilon, gamma and alpha-beta, on
  one shared symmetric scale;
* ``tabular.png``: one explanation of the README's tabular model, as bars;
* ``importance.png``: that model's global importance over its 600 rows;
* ``flip_curves.png``: the demo's mean pixel-flipping curves per rule, on
  the 200 probes of its MoRF AOPC row.

Everything is seeded: the same lrpfast and matplotlib give the same pictures.
Run it from anywhere with lrpfast importable (installed, or built in place
and on ``PYTHONPATH``).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile

import numpy as np

import lrpfast as lf
import lrpfast.plot
from lrpfast.cli import run_demo

HERE = os.path.dirname(os.path.abspath(__file__))
DPI = 100

# The README's tabular example ("Which features matter overall"), line for line.
NAMES = ["age", "income", "debt", "tenure", "noise_a", "noise_b"]


def tabular_model():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 6))
    y = (X[:, 1] - X[:, 2] > 0).astype(int)
    net = lf.Network((6,), [lf.Dense(16, "relu"), lf.Dense(2), lf.SoftMax()], seed=0)
    lf.train(net, X, y, epochs=30, seed=0)
    return net, X, y


def save(fig, name):
    path = os.path.join(HERE, name)
    fig.savefig(path, dpi=DPI)
    print(f"{path}  {os.path.getsize(path) / 1024:.0f} KB")


def main():
    # The demo's own pictures (seed 2026), through its --png hook.
    with tempfile.TemporaryDirectory() as tmp:
        run_demo(seed=2026, out=io.StringIO(), png=tmp)
        for src, dst in (("probe1.png", "heatmap.png"),
                         ("rule_contrast.png", "rule_contrast.png"),
                         ("flip_curves.png", "flip_curves.png")):
            shutil.copyfile(os.path.join(tmp, src), os.path.join(HERE, dst))
            path = os.path.join(HERE, dst)
            print(f"{path}  {os.path.getsize(path) / 1024:.0f} KB")

    net, X, y = tabular_model()
    save(lrpfast.plot.heatmap(lf.explain(net, X[0]), probe=X[0], feature_names=NAMES),
         "tabular.png")
    b = lf.explain_batch(net, X)
    save(lrpfast.plot.importance(b, feature_names=NAMES), "importance.png")


if __name__ == "__main__":
    main()
