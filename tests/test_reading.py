"""What a newcomer meets first: global importance, and the clear errors of issue 10.

Global feature importance is compared with a plain loop; each error is checked
for what its message must tell the reader.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

import lrpfast as lf

# The sources of the checkout the tests belong to (an installed package may
# hold no .pyx files).
SRC = pathlib.Path(__file__).resolve().parent.parent / "lrpfast"


# ---------------------------------------------------------------------------
# BatchExplanation.importance
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def batch():
    net = lf.Network((2, 3, 4), [lf.Dense(8, "relu"), lf.Dense(4), lf.SoftMax()],
                     seed=3)
    X = np.random.default_rng(0).normal(size=(40, 2, 3, 4))
    # class 3 is never explained: forced classes 0..2 only
    forced = np.random.default_rng(1).integers(0, 3, size=40)
    return lf.explain_batch(net, X, forced_class=forced)


def test_importance_is_the_mean_abs_relevance(batch):
    imp = batch.importance()
    assert imp.dtype == np.float64 and imp.shape == (2, 3, 4)
    expected = np.zeros((2, 3, 4))
    for i in range(len(batch)):
        expected += np.abs(batch.relevance[i].astype(np.float64))
    np.testing.assert_allclose(imp, expected / len(batch), rtol=1e-12)


def test_importance_by_class(batch):
    imp = batch.importance(by_class=True)
    assert imp.dtype == np.float64 and imp.shape == (4, 2, 3, 4)
    for k in range(4):
        rows = [i for i in range(len(batch)) if batch.explained_class[i] == k]
        if rows:
            ref = sum(np.abs(batch.relevance[i].astype(np.float64)) for i in rows) / len(rows)
        else:
            ref = np.zeros((2, 3, 4))          # documented: no row explains class 3
        np.testing.assert_allclose(imp[k], ref, rtol=1e-12, atol=0)
    assert not imp[3].any()
    # weighted by class counts, the per-class means give back the overall mean
    counts = np.bincount(batch.explained_class, minlength=4)
    np.testing.assert_allclose(np.tensordot(counts, imp, axes=1) / len(batch),
                               batch.importance(), rtol=1e-12)


def test_importance_of_tabular_float32_batch():
    net = lf.Network((5,), [lf.Dense(3, "tanh"), lf.Dense(2)], seed=0)
    b = lf.explain_batch(net, np.random.default_rng(2).normal(size=(7, 5)))
    imp = b.importance()
    assert imp.shape == (5,) and imp.dtype == np.float64
    np.testing.assert_allclose(imp, np.abs(b.relevance.astype(np.float64)).mean(axis=0))


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_importance_by_class_must_be_bool(batch, bad):
    with pytest.raises(TypeError, match="by_class must be True or False"):
        batch.importance(by_class=bad)


# ---------------------------------------------------------------------------
# NaN in a batch names the row; one-output classifiers say why.
# ---------------------------------------------------------------------------

def test_nan_in_a_batch_names_the_first_row_and_position():
    net = lf.Network((1, 6, 6), [lf.Dense(3), lf.SoftMax()], seed=0)
    X = np.zeros((6, 1, 6, 6), dtype=np.float32)
    X[4, 0, 2, 1] = np.nan
    X[5, 0, 0, 0] = np.nan
    X[5, 0, 0, 3] = np.nan
    for call in (lambda: lf.explain_batch(net, X), lambda: net.forward(X)):
        with pytest.raises(ValueError) as info:
            call()
        msg = str(info.value)
        assert "contains NaN in 2 rows; the first is row 4, at X[4, 0, 2, 1]" in msg \
            or "contains NaN in 2 rows; the first is row 4, at x[4, 0, 2, 1]" in msg
    X[4, 0, 2, 1] = 0
    X[1, 0, 5, 5] = np.inf
    with pytest.raises(ValueError, match=r"X contains Inf in 1 row; the first is row 1, "
                                         r"at X\[1, 0, 5, 5\]"):
        lf.explain_batch(net, np.where(np.isnan(X), 0, X))


def test_nan_in_one_probe_names_the_position():
    net = lf.Network((4,), [lf.Dense(2)], seed=0)
    x = np.array([0.0, 1.0, np.nan, np.nan])
    with pytest.raises(ValueError, match=r"x contains NaN at 2 positions; the first is x\[2\]"):
        lf.explain(net, x)


def test_forced_class_1_of_a_one_output_network_says_why():
    net = lf.Network((4,), [lf.Dense(3, "relu"), lf.Dense(1, "sigmoid")], seed=0)
    x = np.ones(4)
    for call in (lambda: lf.explain(net, x, forced_class=1),
                 lambda: lf.explain_batch(net, x[None], forced_class=1),
                 lambda: lf.explain_batch(net, np.ones((3, 4)), forced_class=[0, 1, 0]),
                 lambda: lf.lrp_report(net, x, forced_class=1)):
        with pytest.raises(ValueError) as info:
            call()
        msg = str(info.value)
        assert "forced_class must be 0 for a network with a single output, got 1" in msg
        assert "explain class 0" in msg.lower() and "negative relevance" in msg
    assert lf.explain(net, x, forced_class=0).explained_class == 0
    # more outputs: the usual range message
    net2 = lf.Network((4,), [lf.Dense(2)], seed=0)
    with pytest.raises(ValueError, match=r"forced_class must be an int in \[0, 1\], got 2"):
        lf.explain(net2, x, forced_class=2)


# ---------------------------------------------------------------------------
# Custom layers are checked when the Network is built.
# ---------------------------------------------------------------------------

class NoForward(lf.Layer):
    lrp = "passthru"


class BadMode(lf.Layer):
    lrp = "identity"

    def _forward(self, A):
        return A


class Shrink(lf.Layer):
    lrp = "passthru"

    def _output_shape(self, input_shape):
        return (input_shape[0] - 1,)

    def _forward(self, A):
        return A[:, 1:]


class Clip(lf.Layer):
    """The README's custom layer: clip at 3, relevance passes through."""

    lrp = "passthru"

    def _forward(self, A):
        return np.minimum(A, 3.0)


def test_layer_without_forward_is_refused_at_construction():
    with pytest.raises(TypeError) as info:
        lf.Network((5,), [lf.Dense(4, "relu"), NoForward(name="mystery"), lf.Dense(2)])
    msg = str(info.value)
    assert "layers[1] (mystery)" in msg and "_forward" in msg and "passthru" in msg


def test_unknown_lrp_mode_is_refused():
    with pytest.raises(ValueError, match=r"layers\[0\] \(BadMode\): lrp must be one of"):
        lf.Network((5,), [BadMode(), lf.Dense(2)])


def test_passthru_layer_that_changes_the_size_is_refused():
    with pytest.raises(ValueError, match=r"layers\[1\] \(Shrink\).*5 -> 4"):
        lf.Network((5,), [lf.Identity(), Shrink(), lf.Dense(2)])


def test_a_custom_passthru_layer_explains_and_cannot_be_saved(tmp_path):
    net = lf.Network((5,), [lf.Dense(4, "relu"), Clip(), lf.Dense(2)], dtype="float64",
                     seed=0)
    x = np.linspace(0.0, 0.5, 5)
    e = lf.explain(net, x)
    assert e.healthy and e.boundaries[1].rule == "passthru"
    # the same as the network without the clip when nothing reaches 3
    plain = lf.Network((5,), [lf.Dense(4, "relu"), lf.Dense(2)], dtype="float64", seed=0)
    assert net.layers[0]._forward(x[None]).max() < 3
    np.testing.assert_allclose(e.relevance, lf.explain(plain, x).relevance, rtol=1e-12)
    # and it does clip: a large probe gives a different output than the plain one
    assert not np.allclose(net.forward(100 * x + 50), plain.forward(100 * x + 50))
    with pytest.raises(ValueError, match=r"layers\[1\] \(Clip\) is a custom Clip layer"):
        net.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


# ---------------------------------------------------------------------------
# Model files and the source tree.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("content, expect", [
    (b"weights = [1, 2, 3]\n", "is not an npz or lrpfast model file"),
    (b"\x89PNG\r\n\x1a\n....", "is not an npz or lrpfast model file"),
    (b"", "is empty"),
])
def test_non_npz_file_is_named_as_such(tmp_path, content, expect):
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        lf.load(path)
    assert expect in str(info.value) and "model.npz" in str(info.value)
    assert "pickled" not in str(info.value)


def test_import_from_an_unbuilt_source_tree_says_so(tmp_path):
    # A copy of the sources (no compiled kernels) beside pyproject.toml and
    # setup.py, run from that folder: Python imports it before any install.
    pkg = tmp_path / "lrpfast"
    pkg.mkdir()
    for f in SRC.iterdir():
        if f.suffix in (".py", ".pyx", ".pxd"):
            shutil.copy(f, pkg / f.name)
    root = SRC.parent
    for name in ("pyproject.toml", "setup.py"):
        if (root / name).exists():
            shutil.copy(root / name, tmp_path / name)
        else:
            (tmp_path / name).write_text("")
    assert not list(pkg.glob("_kernels*.so"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", "import lrpfast"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: lrpfast was imported from its source tree")
    assert str(tmp_path) in last
    assert "You are inside the source tree; cd elsewhere, or build in place " \
           "(python setup.py build_ext --inplace)" in last
    # Without the sources beside it (a broken install), the other message.
    (pkg / "_kernels.pyx").unlink()
    proc = subprocess.run([sys.executable, "-c", "import lrpfast"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert "compiled kernels (lrpfast._kernels) are missing or broken" in proc.stderr
