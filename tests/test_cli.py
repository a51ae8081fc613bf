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
             "Outcome (a top pixel counts when it lies on the blob with positive relevance):"]
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


def contrast_table(part):
    """{row title: [cell per rule]} of the RULE CONTRAST table.

    The columns start where the cells of the "rule" row start.
    """
    lines = part.splitlines()
    rule = next(line for line in lines if line.startswith("  rule "))
    starts = [m.start() for m in re.finditer(r"(?<=  )\S", rule)][1:]
    rows = {}
    for line in lines:
        if len(line) > starts[0] and line.startswith("  ") and line[2] != " ":
            edges = starts + [len(line)]
            rows[line[:starts[0]].strip()] = [line[a:b].strip() for a, b in
                                              zip(edges, edges[1:])]
    return rows


LABELS = [("epsilon-rule", "eps=0.01"), ("gamma-rule", "gamma=0.25, eps=0.01"),
          ("alpha-beta-rule", "alpha=2, beta=1")]


def test_demo_rule_contrast(demo):
    part = block(demo.out, "RULE CONTRAST", "WHAT TO EXPECT")
    t = contrast_table(part)
    assert t["rule"] == [name for name, _ in LABELS]
    assert t["parameters"] == [params for _, params in LABELS]
    assert t["verdict"] == ["healthy"] * 3
    assert all(re.fullmatch(r"0 \(logit [+-]\d\.\d{4}\)", c) for c in t["class"])
    # top-6 table: one row per rank, three (position, relevance) cells
    ranks = [str(k) for k in range(1, 7)]
    cells = [[re.fullmatch(r"(\(\d+, \d+, \d+\))  ([+-]\d\.\d{4}e[+-]\d+)", c).groups()
              for c in t[r]] for r in ranks]
    assert all(len(c) == 3 for c in cells)
    blob = as_text(blob_positions(0))
    for rule in range(3):
        top4 = [cells[rank][rule] for rank in range(4)]
        assert {p for p, _ in top4} == blob, LABELS[rule]
        # the "top-4 on blob" row counts them by sign, recomputed from the table
        pos = sum(float(v) > 0 for _, v in top4)
        expected = f"{pos} positive" + (f", {4 - pos} negative" if pos < 4 else "")
        assert t["top-4 on blob"][rule] == expected
    eps_res, gamma_res, ab_res = map(float, t["max residual"])
    assert 0 < eps_res < 0.05 and 0 < gamma_res < 0.05   # O(eps) stabiliser shares
    assert ab_res < 1e-4                                  # conserved up to float32
    # one |R| and sign map pair per rule and row, the sign '.' below 1% of max|R|
    for y in range(6):
        maps = t[f"y = {y}"]
        assert len(maps) == 3 and all(re.fullmatch(r"\|[ .:\-=+*#%@]{6}\|  \|[+\-.]{6}\|", m)
                                      for m in maps)


def _signed_hits(report, k, cls):
    """(positive, negative) blob hits among the top-k rows of a report's section (b)."""
    rows = re.findall(r"^\s+\d+\s+(\(\d+, \d+, \d+\))\s+([+-]\d\.\d{4}e[+-]\d+)",
                      block(report, "(b) Top-", "(c)"), re.M)[:k]
    on = [float(v) for p, v in rows if p in as_text(blob_positions(cls))]
    return sum(v > 0 for v in on), sum(v < 0 for v in on)


def test_demo_outcome_counts_hits_by_sign(demo):
    tail = demo.out[demo.out.index("Outcome ("):]
    assert "  training      train-acc=1.000" in tail
    assert tail.rstrip().splitlines()[-3] == "  conservation  healthy everywhere"
    # probe 1: recomputed from the contrast table's top-4 cells
    t = contrast_table(block(demo.out, "RULE CONTRAST", "WHAT TO EXPECT"))
    counts = []
    for rule in range(3):
        signs = [float(re.search(r"[+-]\d\.\d{4}e[+-]\d+$", t[str(r)][rule])[0]) > 0
                 for r in range(1, 5)]
        pos = sum(signs)
        counts.append(f"{pos}/4" + (f" (+{4 - pos} negative)" if pos < 4 else ""))
    assert (f"epsilon {counts[0]}, gamma {counts[1]}, alpha-beta {counts[2]}") in tail
    # probe 2: recomputed from its report's top-8 table; a blob pixel with
    # negative relevance is not a hit, and is named apart
    p2 = block(demo.out, "PROBE 2", "RULE CONTRAST")
    (a2, n2), (a4, n4) = _signed_hits(p2, 2, 1), _signed_hits(p2, 4, 1)
    fmt = lambda pos, neg, k: f"{pos}/{k}" + (f" (+{neg} negative)" if neg else "")
    assert (f"probe 2       class 1; on the bottom-right blob: top-2 {fmt(a2, n2, 2)}, "
            f"top-4 {fmt(a4, n4, 4)}") in tail
    assert (f"top-4 by |R|: {a4 + n4} on the blob, {a4} positive (for class 1), "
            f"{n4} negative (against it)") in p2
    # For seed 2026 the top pixel of probe 2 is on the blob with negative
    # relevance: the case the counts must not call a hit.
    assert n2 >= 1


@pytest.fixture(scope="module")
def verbose_demo():
    proc = run("demo", "--verbose")
    assert proc.returncode == 0 and proc.stderr == ""
    return proc.stdout


def test_demo_fits_100_columns(demo, verbose_demo):
    for text in (demo.out, verbose_demo):
        wide = [line for line in text.splitlines() if len(line) > 100]
        assert wide == []


def test_demo_verbose_adds_the_full_reports(demo, verbose_demo):
    assert verbose_demo.count("LRPReport") == 4
    for rule in ("gamma", "alpha-beta"):
        i = verbose_demo.index(f"FULL REPORT: probe 1, {rule}")
        assert verbose_demo[i:].split("\n", 2)[1].startswith(f"LRPReport  {rule}-rule")
    assert "--verbose adds" in demo.out and "--verbose adds" not in verbose_demo
    # Everything else is the same text.
    cut = lambda s: re.sub(r"\n=+ FULL REPORT.*?(?=\n=+ WHAT TO EXPECT)", "", s, flags=re.S)
    strip = lambda s: "\n".join(l for l in s.splitlines() if not l.startswith(("model saved", "(lrpfast demo --verbose")))
    assert strip(cut(verbose_demo)).rstrip() == strip(demo.out).rstrip()


def test_demo_help_names_the_original_report():
    proc = run("demo", "--help")
    text = " ".join(proc.stdout.split())
    assert "original LRPReport (TNNet.LRPReport" in text
    assert "seed's" not in text and "The seed" not in text
    assert "--verbose" in text


def test_demo_save_into_a_closed_pipe(tmp_path):
    model = tmp_path / "m.npz"
    env = dict(os.environ)
    env["PYTHONPATH"] = PKG_PARENT + os.pathsep + env.get("PYTHONPATH", "")
    cmd = (f"set -o pipefail; {sys.executable} -m lrpfast demo --save {model} "
           f"2> {tmp_path / 'err.txt'} | head -1")
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=env,
                          cwd=HERE, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("lrpfast demo:") and proc.stdout.count("\n") == 1
    assert (tmp_path / "err.txt").read_text() == ""          # no traceback
    net = lrpfast.load(model)                                 # written, and whole
    assert net.input_shape == (1, 6, 6)


def test_demo_into_a_pipe_closed_before_reading(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = PKG_PARENT + os.pathsep + env.get("PYTHONPATH", "")
    read, write = os.pipe()
    os.close(read)                                            # nobody will ever read
    try:
        proc = subprocess.run([sys.executable, "-m", "lrpfast", "demo", "--save",
                               str(tmp_path / "m.npz")], stdout=write,
                              stderr=subprocess.PIPE, text=True, env=env, cwd=HERE,
                              timeout=120)
    finally:
        os.close(write)
    assert proc.returncode == 0 and proc.stderr == ""
    assert lrpfast.load(tmp_path / "m.npz").n_outputs == 2


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
    # top-4 of every rule on the blob; alpha-beta gives one of them negative relevance
    assert {r: out["probe1_on_blob"][r] + out["probe1_against"][r]
            for r in out["probe1_on_blob"]} == {"epsilon": 4, "gamma": 4, "alpha-beta": 4}
    assert out["probe1_on_blob"]["epsilon"] == out["probe1_on_blob"]["gamma"] == 4
    # probe 2's top-2 are both on the blob, one of them with negative relevance
    assert out["probe2_on_blob"][0] + out["probe2_against"][0] == 2
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


def _one_line_error(proc, *fragments, width=100):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for frag in fragments:
        assert frag in lines[0], lines[0]
    assert width is None or len(lines[0]) <= width, lines[0]
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


# ---------------------------------------------------------------------------
# Reading: bare command, warnings, clear errors.
# ---------------------------------------------------------------------------

def test_bare_lrpfast_prints_the_help():
    proc = run()
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("usage: lrpfast")
    for word in ("demo", "explain", "COMMAND --help"):
        assert word in proc.stderr
    assert "Traceback" not in proc.stderr
    assert cli.main([]) == 2


@pytest.mark.parametrize("args, ignored", [
    (["--gamma", "0.5"], ["--gamma 0.5 is ignored: the epsilon rule does not use it "
                          "(it uses --eps)"]),
    (["--alpha", "3", "--rule", "gamma"], ["--alpha 3 is ignored: the gamma rule"]),
    (["--rule", "alpha-beta", "--eps", "0.1", "--gamma", "1"],
     ["--eps 0.1 is ignored: the alpha-beta rule", "--gamma 1 is ignored: the alpha-beta"]),
    (["--rule", "gamma", "--gamma", "0.5", "--eps", "0.001"], []),
    (["--rule", "alpha-beta", "--alpha", "2"], []),     # a default given explicitly is used
    ([], []),
])
def test_unused_rule_options_warn_one_line_each(demo, probe_file, args, ignored):
    proc = run("explain", demo.model, probe_file, "--top-k", 2, *args)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == len(ignored)
    for line, text in zip(lines, ignored):
        assert line.startswith("lrpfast explain: warning: ") and text in line
    # the report is the one of the options the rule uses, with its defaults elsewhere
    assert proc.stdout.startswith("LRPReport")


def test_unused_options_do_not_change_the_report(demo, probe_file):
    plain = run("explain", demo.model, probe_file, "--rule", "gamma", "--gamma", 0.5)
    noisy = run("explain", demo.model, probe_file, "--rule", "gamma", "--gamma", 0.5,
                "--alpha", 7)
    assert noisy.stdout == plain.stdout and "--alpha 7 is ignored" in noisy.stderr


def test_ignored_option_is_still_validated(demo, probe_file):
    proc = run("explain", demo.model, probe_file, "--alpha", "0.5")
    _one_line_error(proc, "--alpha must be >= 1")


def test_python_warnings_become_one_stderr_line(monkeypatch, capsys, demo, probe_file):
    import warnings

    real = cli.render_report

    def warning_report(*a, **k):
        warnings.warn("something odd\n   over two lines", RuntimeWarning)
        return real(*a, **k)

    monkeypatch.setattr(cli, "render_report", warning_report)
    assert cli.main(["explain", str(demo.model), str(probe_file)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("LRPReport")
    assert err == "lrpfast explain: warning: something odd over two lines\n"


def test_text_file_named_npz_is_not_a_model(tmp_path, probe_file):
    model = tmp_path / "model.npz"
    model.write_text("weights = [1, 2, 3]\n")
    proc = run("explain", model, probe_file)
    line = _one_line_error(proc, "is not an npz or lrpfast model file")
    assert "pickle" not in line


def test_class_1_of_a_one_output_model(tmp_path, probe_file):
    net = Network((1, 6, 6), [Dense(4, "relu"), Dense(1, "sigmoid")], seed=0)
    net.save(tmp_path / "binary.npz")
    proc = run("explain", tmp_path / "binary.npz", probe_file, "--class", 1)
    # the one line that keeps its explanation past 100 columns (the test pins both parts)
    _one_line_error(proc, "--class must be 0 for a network with a single output",
                    "negative relevance", width=None)


def test_readme_demo_block_is_what_the_demo_prints(demo):
    from lrpfast import _dispatch

    readme = os.path.join(os.path.dirname(HERE), "README.md")
    if not os.path.exists(readme):
        pytest.skip("no README beside the tests")
    text = open(readme, encoding="utf-8").read()
    shown = re.search(r"```console\n\$ lrpfast demo\n(.*?)```", text, re.S)[1].splitlines()
    assert max(len(line) for line in shown) <= 100
    if not _dispatch.kernels.__name__.endswith("_avx2"):
        pytest.skip("the README shows the AVX2/FMA kernels' last digits")
    # Every shown line, in order, byte for byte; "..." stands for lines left out.
    printed = [l for l in demo.out.splitlines() if not l.startswith("model saved")]
    k = 0
    for line in shown:
        if line == "...":
            continue
        while k < len(printed) and printed[k] != line:
            k += 1
        assert k < len(printed), f"README line not printed (in this order): {line!r}"
        k += 1


@pytest.mark.parametrize("command", [[], ["demo"], ["explain"], ["evaluate"]])
def test_help_fits_100_columns(command):
    # argparse wraps to $COLUMNS; a wide terminal must not widen the raw
    # description and epilog text, which is laid out by hand.
    env = dict(os.environ, COLUMNS="100",
               PYTHONPATH=PKG_PARENT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "lrpfast", *command, "--help"],
                          capture_output=True, text=True, env=env, cwd=HERE, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) > 5
    widest = max(lines, key=len)
    assert len(widest) <= 100, widest
