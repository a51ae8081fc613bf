"""``lrpfast explain MODEL DATA.npy --out OUT``: streaming, atomic, with progress.

References are :func:`lrpfast.explain_batch` on the same rows in memory and
``np.bincount``; the file tests look at the folder's listing before and after.
"""

import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import lrpfast as lf
from lrpfast import _stream, cli

PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(lf.__file__)))
KEYS = ("relevance", "explained_class", "logits", "max_residual")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    X, y = lf.datasets.blobs(240, noise=0.1, seed=0)
    net = lf.Network((1, 6, 6), [lf.Dense(16, "relu"), lf.Dense(12, "relu"),
                                 lf.Dense(2, "linear"), lf.SoftMax()], seed=0)
    lf.train(net, X, y, epochs=5, seed=0)
    net.save(d / "model.npz")
    return d / "model.npz"


@pytest.fixture
def data(tmp_path):
    X = lf.datasets.blobs(2345, noise=0.3, seed=1)[0].astype(np.float32)
    np.save(tmp_path / "data.npy", X)
    return tmp_path / "data.npy"


def listing(folder):
    return sorted(os.listdir(folder))


def chunked_reference(net, X, rows, **kw):
    """explain_batch on the same row ranges as the stream, concatenated."""
    parts = [lf.explain_batch(net, X[lo:lo + rows], **kw) for lo in range(0, len(X), rows)]
    return {k: np.concatenate([getattr(p, k) for p in parts]) for k in KEYS}


def test_npz_holds_the_four_arrays(model, data, tmp_path, capsys):
    out = tmp_path / "out.npz"
    code = cli.main(["explain", str(model), str(data), "--out", str(out),
                     "--chunk-size", "500", "--rule", "gamma"])
    assert code == 0
    net, X = lf.load(model), np.load(data)
    want = chunked_reference(net, X, 500, rule="gamma")
    with np.load(out, allow_pickle=False) as z:
        assert sorted(z.files) == sorted(KEYS)
        for k in KEYS:
            assert z[k].dtype == want[k].dtype and z[k].tobytes() == want[k].tobytes(), k
    # and the numbers are those of one in-memory call on the whole file
    whole = lf.explain_batch(net, X, rule="gamma")
    np.testing.assert_allclose(want["relevance"], whole.relevance, rtol=1e-5, atol=1e-7)
    assert (want["explained_class"] == whole.explained_class).all()
    assert listing(tmp_path) == ["data.npy", "out.npz"]         # no temporary left
    # one summary line: rows, class counts, max residual
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and len(line.rstrip("\n")) <= 100
    counts = np.bincount(want["explained_class"], minlength=2)
    assert "explained 2345 rows" in line
    for k in range(2):
        assert f"{k}: {counts[k]}" in line
    assert f"max residual {want['max_residual'].max():.3e}" in line


def test_npy_holds_the_relevance(model, data, tmp_path):
    out = tmp_path / "rel.npy"
    assert cli.main(["explain", str(model), str(data), "--out", str(out),
                     "--chunk-size", "1000", "--class", "1", "--no-progress"]) == 0
    want = chunked_reference(lf.load(model), np.load(data), 1000, forced_class=1)
    got = np.load(out)
    assert got.dtype == np.float32 and got.tobytes() == want["relevance"].tobytes()
    assert listing(tmp_path) == ["data.npy", "rel.npy"]


def test_through_the_console(model, data, tmp_path):
    env = dict(os.environ, PYTHONPATH=PKG_PARENT)
    proc = subprocess.run([sys.executable, "-m", "lrpfast", "explain", str(model), str(data),
                           "--out", str(tmp_path / "o.npz")], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)   # not the source tree
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""            # no terminal: no bar by default
    assert proc.stdout.startswith("explained 2345 rows")
    assert np.load(tmp_path / "o.npz")["relevance"].shape == (2345, 1, 6, 6)


class _Boom(RuntimeError):
    pass


def _failing_explain(monkeypatch, exc, after=2):
    real = _stream.explain_batch
    calls = []

    def explain_batch(*args, **kw):
        calls.append(1)
        if len(calls) > after:
            raise exc
        return real(*args, **kw)

    monkeypatch.setattr(_stream, "explain_batch", explain_batch)
    return calls


@pytest.mark.parametrize("suffix", [".npz", ".npy"])
def test_a_failing_chunk_leaves_no_file(model, data, tmp_path, monkeypatch, suffix):
    calls = _failing_explain(monkeypatch, _Boom("chunk 3"))
    before = listing(tmp_path)
    with pytest.raises(_Boom):
        cli.main(["explain", str(model), str(data), "--out", str(tmp_path / f"o{suffix}"),
                  "--chunk-size", "300"])
    assert len(calls) == 3
    assert listing(tmp_path) == before


def test_a_failure_keeps_the_previous_output(model, data, tmp_path, monkeypatch):
    out = tmp_path / "o.npz"
    out.write_bytes(b"previous result")
    _failing_explain(monkeypatch, _Boom("chunk 2"), after=1)
    with pytest.raises(_Boom):
        _stream.explain_file(lf.load(model), np.load(data, mmap_mode="r"), out,
                             chunk_size=1000)
    assert out.read_bytes() == b"previous result"
    assert listing(tmp_path) == ["data.npy", "o.npz"]


def test_ctrl_c_leaves_no_file(model, data, tmp_path, monkeypatch, capsys):
    _failing_explain(monkeypatch, KeyboardInterrupt(), after=2)
    code = cli.main(["explain", str(model), str(data), "--out", str(tmp_path / "o.npz"),
                     "--chunk-size", "300"])
    assert code == 130
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.strip().endswith("interrupted")
    assert listing(tmp_path) == ["data.npy"]


def _one_line_exit_2(capsys, argv, *fragments):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    for frag in fragments:
        assert frag in lines[0], lines[0]


def test_nan_row_names_the_global_row(model, tmp_path, capsys):
    X = lf.datasets.blobs(1000, noise=0.3, seed=1)[0]
    X[777, 0, 4, 1] = np.nan
    np.save(tmp_path / "nan.npy", X)
    _one_line_exit_2(capsys, ["explain", str(model), str(tmp_path / "nan.npy"), "--out",
                              str(tmp_path / "o.npz"), "--chunk-size", "100"],
                     "DATA row 777 contains NaN")
    X[777, 0, 4, 1] = np.inf
    np.save(tmp_path / "inf.npy", X)
    _one_line_exit_2(capsys, ["explain", str(model), str(tmp_path / "inf.npy"), "--out",
                              str(tmp_path / "o.npy")], "DATA row 777 contains Inf")
    assert listing(tmp_path) == ["inf.npy", "nan.npy"]


@pytest.mark.parametrize("extra, fragments", [
    (["--out", "{d}/no/such/o.npz"], ["--out: no such folder", "no/such"]),
    (["--out", "{d}/o.txt"], ["--out must end with .npy or .npz", "o.txt"]),
    (["--out", "{d}"], ["--out must end with .npy or .npz"]),
    (["--out", "{d}/o.npz", "--chunk-size", "0"], ["--chunk-size must be an int >= 1"]),
    (["--chunk-size", "10"], ["--chunk-size needs --out"]),
    (["--out", "{d}/o.npz", "--png", "{d}/h.png"], ["--png", "does not combine with --out"]),
    (["--out", "{d}/o.npz", "--class", "5"], ["--class must be an int in [0, 1]"]),
])
def test_bad_options_exit_2(model, data, tmp_path, capsys, extra, fragments):
    argv = ["explain", str(model), str(data)] + [a.format(d=tmp_path) for a in extra]
    _one_line_exit_2(capsys, argv, *fragments)
    assert listing(tmp_path) == ["data.npy"]


def test_bad_data_files_exit_2(model, tmp_path, capsys):
    np.save(tmp_path / "wrong.npy", np.zeros((10, 36)))
    np.save(tmp_path / "empty.npy", np.zeros((0, 1, 6, 6)))
    np.save(tmp_path / "text.npy", np.array([["a"] * 36] * 2).reshape(2, 1, 6, 6))
    for name, frag in [("wrong", "DATA must have shape (B, 1, 6, 6), got (10, 36)"),
                       ("empty", "DATA is an empty batch"), ("text", "real numbers")]:
        _one_line_exit_2(capsys, ["explain", str(model), str(tmp_path / f"{name}.npy"),
                                  "--out", str(tmp_path / "o.npz")], frag)
    assert "o.npz" not in listing(tmp_path)


def test_a_batch_without_out_says_how(model, data, capsys):
    _one_line_exit_2(capsys, ["explain", str(model), str(data)],
                     "PROBE must hold one probe", "(2345, 1, 6, 6)", "--out")


def _peak_bytes(net, path, out, rows):
    data = np.load(path, mmap_mode="r")
    tracemalloc.start()
    try:
        _stream.explain_file(net, data, out, chunk_size=rows)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_at_a_chunk(model, tmp_path):
    """Peak allocations do not grow with the file: 4x the rows, the same peak."""
    net = lf.load(model)
    peaks, sizes = [], []
    for n in (10_000, 40_000):
        X = lf.datasets.blobs(n, noise=0.3, seed=2)[0].astype(np.float32)
        np.save(tmp_path / f"d{n}.npy", X)
        sizes.append(os.path.getsize(tmp_path / f"d{n}.npy"))
        peaks.append(_peak_bytes(net, tmp_path / f"d{n}.npy", tmp_path / f"o{n}.npz", 500))
    assert peaks[1] < 1.25 * peaks[0] + (64 << 10), (peaks, sizes)
    assert peaks[1] < sizes[1] / 4, (peaks, sizes)
    with np.load(tmp_path / "o40000.npz") as z:
        assert z["relevance"].shape == X.shape
        np.testing.assert_array_equal(z["explained_class"],
                                      lf.explain_batch(net, X).explained_class)


def test_summary_fits_100_columns_with_many_classes():
    summary = {"rows": 10**9, "counts": np.arange(1000, 1010) * 10**5, "seconds": 12345.6,
               "max_residual": 1.25e-3, "out": "/some/folder/explanations.npz"}
    line = _stream.format_summary(summary)
    assert len(line) <= 100 and "(+" in line and "1009" in line.split("classes ")[1][:10]
    few = _stream.format_summary(dict(summary, counts=np.array([3, 0, 5])))
    assert "classes 2: 5, 0: 3;" in few and "1: 0" not in few
