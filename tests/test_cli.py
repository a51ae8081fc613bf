"""The ``lrpfast`` command through subprocess: demo and explain, with errors."""

import os
import re
import subprocess
import sys
import time
import types

import numpy as np
import pytest

import lrpfast
from lrpfast import cli
from lrpfast.datasets import blob_positions, blobs
from lrpfast.layers import Dense, SoftMax
from lrpfast.network import Network
from lrpfast.report import lrp_report

# The subprocess must import the same lrpfast as this process (installed or
# built in place), so it gets that package's parent on PYTHONPATH and runs in
# the tests folder: ``python -m`` puts the working directory first on
# sys.path, and the source tree of a non-editable install has no kernels.
PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(lrpfast.__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))


def run(*args):
    env = dict(os.environ)
    env["PYTHONPATH"] = PKG_PARENT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "lrpfast", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=HERE, timeout=120)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "demo-model.npz"
    t0 = time.perf_counter()
    proc = run("demo", "--seed", 2026, "--save", path)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return types.SimpleNamespace(out=proc.stdout, seconds=seconds, model=path)


def block(text, start, stop):
    i = text.index(start)
    return text[i:text.index(stop, i)]


def top_positions_of(report, k):
    rows = re.findall(r"^\s+\d+\s+(\(\d+, \d+, \d+\))\s+[+-]\d", block(report, "(b) Top-",
                                                                       "(c)"), re.M)
    return rows[:k]


def as_text(positions):
    return {"(%d, %d, %d)" % p for p in positions}


# ---------------------------------------------------------------------------
# demo --seed 2026
# ---------------------------------------------------------------------------

def test_demo_runs_fast(demo):
    assert demo.seconds < 10


def test_demo_training_log(demo):
    log = re.findall(r"^epoch (\d+)  train-acc=(\d\.\d{3})$", demo.out, re.M)
    assert [int(n) for n, _ in log] == [1, 50, 100, 150]
    assert log[-1][1] == "1.000"
    assert "36 -> Dense(16, relu) -> Dense(12, relu) -> Dense(2, linear) -> SoftMax" in demo.out
    assert "150 epochs of 24 fresh samples at noise 0.1" in demo.out
    assert f"model saved to {demo.model}" in demo.out


def test_demo_sections_in_order(demo):
    marks = ["epoch 150", "PROBE 1: a clean class-0 sample (noise 0.05)",
             "PROBE 2: a noisy class-1 sample (noise 0.30)",
             "RULE CONTRAST: probe 1 under three rules, top-6", "WHAT TO EXPECT",
             "Outcome: "]
    pos = [demo.out.index(m) for m in marks]
    assert pos == sorted(pos)
    assert demo.out.count("LRPReport") == 2
    assert demo.out.count("layer 3 SoftMax: no epsilon rule") == 2


def test_demo_probe1(demo):
    part = block(demo.out, "PROBE 1", "PROBE 2")
    assert "probe 1: |x|" in part  # the input drawn in ASCII
    assert "explained  class 0 (argmax of 2 outputs)" in part
    assert set(top_positions_of(part, 4)) == as_text(blob_positions(0))
    assert "Verdict: healthy" in part


def test_demo_probe2(demo):
    part = block(demo.out, "PROBE 2", "RULE CONTRAST")
    assert "explained  class 1 (argmax of 2 outputs)" in part
    assert set(top_positions_of(part, 2)) <= as_text(blob_positions(1))
    assert "Verdict: healthy" in part


def test_demo_rule_contrast(demo):
    part = block(demo.out, "RULE CONTRAST", "WHAT TO EXPECT")
    labels = ["epsilon-rule (eps=0.01)", "gamma-rule (gamma=0.25, eps=0.01)",
              "alpha-beta-rule (alpha=2, beta=1)"]
    for label in labels:
        assert label in part
    assert re.search(r"^  verdict\s+healthy\s+healthy\s+healthy$", part, re.M)
    assert re.search(r"^  class\s+0 \(logit [^)]+\)\s+0 \(logit [^)]+\)\s+0 ", part, re.M)
    # top-6 table: one row per rank, three (position, relevance) cells
    rows = re.findall(r"^  ([1-6])\s+(.*)$", part, re.M)
    assert [int(r) for r, _ in rows] == [1, 2, 3, 4, 5, 6]
    cells = [re.findall(r"\(\d+, \d+, \d+\)", rest) for _, rest in rows]
    assert all(len(c) == 3 for c in cells)
    for rule in range(3):
        top4 = {cells[rank][rule] for rank in range(4)}
        assert top4 == as_text(blob_positions(0)), labels[rule]
    residuals = re.search(r"^  max residual\s+(\S+)\s+(\S+)\s+(\S+)$", part, re.M)
    eps_res, gamma_res, ab_res = map(float, residuals.groups())
    assert 0 < eps_res < 0.05 and 0 < gamma_res < 0.05   # O(eps) stabiliser shares
    assert ab_res < 1e-4                                  # conserved up to float32


def test_demo_outcome_line(demo):
    line = re.search(r"^Outcome: .*$", demo.out, re.M)[0]
    assert "train-acc=1.000" in line
    assert "top-4 on the top-left blob: epsilon 4/4, gamma 4/4, alpha-beta 4/4" in line
    assert "probe 2 -> class 1, on the bottom-right blob: top-2 2/2" in line
    assert line.endswith("conservation healthy everywhere.")


def test_demo_is_reproducible(demo):
    proc = run("demo", "--seed", 2026)
    assert proc.returncode == 0
    strip = lambda s: "\n".join(l for l in s.splitlines() if not l.startswith("model saved"))
    assert strip(proc.stdout) == strip(demo.out)


def test_run_demo_in_process_outcomes():
    import io
    out = cli.run_demo(seed=2026, out=io.StringIO())
    assert out["train_accuracy"] == 1.0
    assert out["probe1_class"] == 0 and out["probe2_class"] == 1
    assert out["probe1_on_blob"] == {"epsilon": 4, "gamma": 4, "alpha-beta": 4}
    assert out["probe2_on_blob"][0] == 2
    assert out["healthy"]


# ---------------------------------------------------------------------------
# explain
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def probe_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("probe") / "probe.npy"
    np.save(path, blobs(1, 0.05, seed=11, cls=0)[0][0])
    return path


def test_explain_matches_lrp_report(demo, probe_file):
    proc = run("explain", demo.model, probe_file, "--rule", "gamma", "--top-k", 5,
               "--gamma", 0.5, "--eps", 0.001)
    assert proc.returncode == 0, proc.stderr
    net = lrpfast.load(demo.model)
    expected = lrp_report(net, np.load(probe_file), rule="gamma", top_k=5, gamma=0.5,
                          eps=0.001)
    assert proc.stdout == expected
    assert proc.stdout.startswith("LRPReport  gamma-rule (gamma=0.5, eps=0.001)")


def test_explain_options(demo, probe_file):
    proc = run("explain", demo.model, probe_file, "--rule", "alpha-beta", "--alpha", 3,
               "--class", 1, "--absorb-bias")
    assert proc.returncode == 0, proc.stderr
    assert "alpha-beta-rule (alpha=3, beta=2)" in proc.stdout
    assert "[absorb_bias]" in proc.stdout
    assert "class 1 (forced; argmax is 0)" in proc.stdout


def test_explain_help():
    proc = run("explain", "--help")
    assert proc.returncode == 0
    for opt in ("--rule", "--eps", "--gamma", "--alpha", "--top-k", "--class",
                "--absorb-bias", "MODEL", "PROBE.npy"):
        assert opt in proc.stdout
    top = run("--help")
    assert top.returncode == 0 and "demo" in top.stdout and "explain" in top.stdout


def _one_line_error(proc, *fragments):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for frag in fragments:
        assert frag in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, demo):
    d = tmp_path_factory.mktemp("bad")
    np.save(d / "wrong.npy", np.zeros((5, 5)))
    np.save(d / "batch.npy", np.zeros((3, 1, 6, 6)))
    np.save(d / "nan.npy", np.full((1, 6, 6), np.nan))
    np.savez(d / "probe.npz", x=np.zeros((1, 6, 6)))
    (d / "text.npy").write_text("not an array")
    raw = demo.model.read_bytes()
    (d / "truncated.npz").write_bytes(raw[:len(raw) // 2])
    (d / "model.onnx").write_bytes(b"not really onnx")
    return d


@pytest.mark.parametrize("args, fragments", [
    (["explain", "{d}/missing.npz", "{probe}"], ["lrpfast explain: error:", "missing.npz"]),
    (["explain", "{model}", "{d}/missing.npy"], ["missing.npy"]),
    (["explain", "{model}", "{d}/wrong.npy"], ["PROBE must have shape (1, 6, 6)", "(5, 5)"]),
    (["explain", "{model}", "{d}/batch.npy"], ["PROBE must hold one probe", "(3, 1, 6, 6)"]),
    (["explain", "{model}", "{d}/nan.npy"], ["NaN"]),
    (["explain", "{model}", "{d}/probe.npz"], [".npz archive"]),
    (["explain", "{model}", "{d}/text.npy"], ["text.npy"]),
    (["explain", "{d}/truncated.npz", "{probe}"], ["truncated.npz"]),
    (["explain", "{d}/model.onnx", "{probe}"], ["lrpfast explain: error:"]),
    (["explain", "{model}", "{probe}", "--rule", "lrp0"], ["--rule", "lrp0"]),
    (["explain", "{model}", "{probe}", "--eps", "-1"], ["--eps must be > 0"]),
    (["explain", "{model}", "{probe}", "--eps", "abc"], ["--eps", "abc"]),
    (["explain", "{model}", "{probe}", "--alpha", "0.5", "--rule", "alpha-beta"], ["--alpha must be >= 1"]),
    (["explain", "{model}", "{probe}", "--gamma", "-0.1"], ["--gamma"]),
    (["explain", "{model}", "{probe}", "--top-k", "0"], ["--top-k must be an int >= 1"]),
    (["explain", "{model}", "{probe}", "--class", "7"], ["--class must be an int in [0, 1], got 7"]),
    (["explain", "{model}"], ["PROBE.npy"]),
    (["explain", "{model}", "{probe}", "--bogus"], ["--bogus"]),
    (["demo", "--seed", "-1"], ["--seed"]),
    (["demo", "--seed", "x"], ["--seed"]),
    (["demo", "--save", "{d}/no/such/dir/m.npz"], ["lrpfast demo: error:"]),
    ([], ["lrpfast: error:"]),
    (["frobnicate"], ["frobnicate"]),
])
def test_errors_are_one_line_exit_2(args, fragments, bad_files, demo, probe_file):
    fill = {"d": bad_files, "model": demo.model, "probe": probe_file}
    proc = run(*[a.format(**fill) for a in args])
    _one_line_error(proc, *fragments)


# ---------------------------------------------------------------------------
# main() in-process, and model loading by extension.
# ---------------------------------------------------------------------------

def test_main_returns_exit_codes(capsys, demo, probe_file):
    assert cli.main(["explain", str(demo.model), str(probe_file), "--top-k", "3"]) == 0
    assert "Top-3" in capsys.readouterr().out
    assert cli.main(["explain", "nope.npz", str(probe_file)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.npz" in err
    assert cli.main(["--help"]) == 0


def test_onnx_models_go_through_interop(monkeypatch, tmp_path, probe_file, capsys):
    net = Network((1, 6, 6), [Dense(2), SoftMax()], seed=0)
    calls = []

    def fake_from_onnx(path):
        calls.append(path)
        return net

    fake = types.ModuleType("lrpfast.interop")
    fake.from_onnx = fake_from_onnx
    monkeypatch.setitem(sys.modules, "lrpfast.interop", fake)
    model = tmp_path / "model.ONNX"
    model.write_bytes(b"")
    assert cli.load_model(model) is net
    assert calls == [str(model)]
    assert cli.main(["explain", str(model), str(probe_file)]) == 0
    assert capsys.readouterr().out.startswith("LRPReport")


def test_npz_models_do_not_import_interop(monkeypatch, demo):
    monkeypatch.setitem(sys.modules, "lrpfast.interop", None)  # import would fail
    net = cli.load_model(demo.model)
    assert isinstance(net, Network)


def test_missing_interop_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "lrpfast.interop", None)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    with pytest.raises(ImportError, match="onnx"):
        cli.load_model(model)
