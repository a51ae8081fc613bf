"""Progress bars: one tqdm update per chunk (or epoch), on stderr, optional."""

import sys

import numpy as np
import pytest

import lrpfast as lf
from lrpfast import cli

tqdm = pytest.importorskip("tqdm")


class Recorder:
    """Stands in for tqdm.tqdm and records what the bar is told."""

    made = []

    def __init__(self, total=None, desc=None, unit=None, file=None, **kw):
        self.total, self.desc, self.unit, self.file = total, desc, unit, file
        self.updates, self.closed = [], False
        Recorder.made.append(self)

    def update(self, n=1):
        self.updates.append(n)

    def close(self):
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@pytest.fixture
def bars(monkeypatch):
    Recorder.made = []
    monkeypatch.setattr(tqdm, "tqdm", Recorder)
    return Recorder.made


def blob_net(seed=0):
    return lf.Network((1, 6, 6), [lf.Dense(16, "relu"), lf.Dense(2), lf.SoftMax()], seed=seed)


def test_explain_batch_updates_once_per_chunk(bars):
    net = blob_net()
    X = lf.datasets.blobs(1050, noise=0.2, seed=0)[0]
    with_bar = lf.explain_batch(net, X, chunk_size=100, progress=True)
    (bar,) = bars
    assert (bar.total, bar.unit, bar.file) == (1050, "row", sys.stderr)
    assert bar.updates == [100] * 10 + [50] and bar.closed
    without = lf.explain_batch(net, X, chunk_size=100)
    assert with_bar.relevance.tobytes() == without.relevance.tobytes()
    assert len(bars) == 1                      # progress=False makes no bar


def test_train_updates_once_per_epoch(bars):
    X, y = lf.datasets.blobs(96, noise=0.1, seed=0)
    a, b = blob_net(), blob_net()
    ha = lf.train(a, X, y, epochs=7, seed=0, progress=True)
    hb = lf.train(b, X, y, epochs=7, seed=0)
    (bar,) = bars
    assert (bar.total, bar.unit, bar.updates, bar.closed) == (7, "epoch", [1] * 7, True)
    assert ha.loss == hb.loss
    assert a.layers[0].weight.tobytes() == b.layers[0].weight.tobytes()


def test_pixel_flipping_updates_once_per_chunk(bars):
    net = blob_net()
    X = lf.datasets.blobs(250, noise=0.2, seed=0)[0]
    b = lf.explain_batch(net, X)
    with_bar = lf.evaluate.pixel_flipping(net, X, b, chunk_size=100, progress=True)
    (bar,) = bars
    assert (bar.total, bar.updates, bar.closed) == (250, [100, 100, 50], True)
    without = lf.evaluate.pixel_flipping(net, X, b, chunk_size=100)
    assert with_bar.curves.tobytes() == without.curves.tobytes()
    with pytest.raises(TypeError, match="progress must be True or False"):
        lf.evaluate.pixel_flipping(net, X, b, progress="yes")


def test_cli_bar_updates_once_per_chunk(bars, tmp_path, capsys):
    net = blob_net()
    net.save(tmp_path / "m.npz")
    np.save(tmp_path / "d.npy", lf.datasets.blobs(1000, noise=0.2, seed=0)[0])
    argv = ["explain", str(tmp_path / "m.npz"), str(tmp_path / "d.npy"), "--out",
            str(tmp_path / "o.npz"), "--chunk-size", "300"]
    assert cli.main(argv + ["--progress"]) == 0
    (bar,) = bars
    assert bar.total == 1000 and bar.updates == [300, 300, 300, 100] and bar.closed
    assert cli.main(argv + ["--no-progress"]) == 0
    assert cli.main(argv) == 0                 # stderr is no terminal here: no bar
    assert len(bars) == 1


def test_real_bar_draws_on_stderr_within_100_columns(capsys):
    net = blob_net()
    X = lf.datasets.blobs(500, noise=0.2, seed=0)[0]
    lf.explain_batch(net, X, chunk_size=100, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    frames = [f for f in captured.err.replace("\n", "\r").split("\r") if f.strip()]
    assert frames and "explain" in frames[-1] and "500/500" in frames[-1]
    assert max(len(f) for f in frames) <= 100


def test_missing_tqdm_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    net = blob_net()
    X = lf.datasets.blobs(20, noise=0.2, seed=0)[0]
    with pytest.raises(ImportError, match=r'pip install "lrpfast\[progress\]"'):
        lf.explain_batch(net, X, progress=True)
    with pytest.raises(ImportError, match=r"lrpfast\[progress\]"):
        lf.train(net, X, np.zeros(20, int), epochs=1, progress=True)
    assert lf.explain_batch(net, X).relevance.shape == X.shape   # no bar: no tqdm needed


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_progress_must_be_a_bool(bad):
    net = blob_net()
    X, y = lf.datasets.blobs(20, noise=0.2, seed=0)
    with pytest.raises(TypeError, match="progress must be True or False"):
        lf.explain_batch(net, X, progress=bad)
    with pytest.raises(TypeError, match="progress must be True or False"):
        lf.train(net, X, y, epochs=1, progress=bad)
