"""``lrpfast evaluate`` and the demo's faithfulness row."""

import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import lrpfast as lf
from lrpfast import cli, evaluate

PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(lf.__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("evaluate")
    net = lf.Network(lf.datasets.SHAPE, [lf.Dense(16, "relu"), lf.Dense(12, "relu"),
                                         lf.Dense(2), lf.SoftMax()], seed=0)
    X, y = lf.datasets.blobs(240, noise=0.1, seed=0)
    lf.train(net, X, y, epochs=10, seed=0)
    net.save(d / "model.npz")
    data = lf.datasets.blobs(60, noise=0.1, seed=1)[0]
    np.save(d / "data.npy", data)
    np.save(d / "flat.npy", data.reshape(60, -1))
    return d, net, data


def run_main(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_prints_the_compare_rules_table(files, capsys):
    d, net, data = files
    code, out, err = run_main(capsys, "evaluate", d / "model.npz", d / "data.npy",
                              "--rules", "epsilon,gamma", "--features-per-step", "2",
                              "--max-rows", "40", "--baseline", "mean", "--seed", "3")
    assert code == 0 and err == ""
    expected = evaluate.compare_rules(net, data[:40], ["epsilon", "gamma"],
                                      features_per_step=2, baseline="mean", seed=3)
    assert out == expected.table() + "\n"
    assert "Pixel flipping on 40 probes" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_evaluate_region_score_and_value_baseline(files, capsys):
    d, net, data = files
    code, out, err = run_main(capsys, "evaluate", d / "model.npz", d / "data.npy",
                              "--region", "2", "3", "--score", "logit", "--baseline",
                              "0.5", "--steps", "3")
    assert code == 0, err
    expected = evaluate.compare_rules(net, data, region=(2, 3), score="logit",
                                      baseline=0.5, steps=3)
    assert out == expected.table() + "\n"
    assert "tile (2x3) per step, 3 steps, baseline 0.5" in out


@pytest.mark.parametrize("args, message", [
    (["--rules", "epsilon,nope"], "--rules"),
    (["--rules", "epsilon,"], "--rules"),
    (["--features-per-step", "0"], "--features-per-step"),
    (["--steps", "0"], "--steps"),
    (["--max-rows", "0"], "--max-rows"),
    (["--region", "4", "4"], "--region"),
    (["--baseline", "white"], "--baseline"),
    (["--baseline", "nan"], "--baseline"),
    (["--score", "softmax"], "--score"),
    (["--eps", "0"], "--eps"),
    (["--seed", "-2"], "--seed"),
    (["--rules", "epsilon,epsilon-gamma-box"], "needs the z-box bounds --low and --high"),
    (["--rules", "z-box", "--high", "1"], "needs the z-box bounds --low"),
    (["--rules", "epsilon,gamma", "--low", "0"], "--low apply only to --rules z-box"),
    (["--rules", "z-box", "--low", "1", "--high", "0"], "--low must be < --high"),
    (["--rules", "z-box", "--low", "0.5", "--high", "0.6"], "outside"),
])
def test_evaluate_bad_options_are_one_line(files, capsys, args, message):
    d, _, _ = files
    code, out, err = run_main(capsys, "evaluate", d / "model.npz", d / "data.npy", *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert len(err.rstrip("\n")) <= 100, err


def test_evaluate_takes_the_bounded_rules(files, capsys):
    d, net, data = files
    code, out, err = run_main(capsys, "evaluate", d / "model.npz", d / "data.npy",
                              "--rules", "epsilon,epsilon-gamma-box,z-box", "--low", "-5",
                              "--high", "5", "--max-rows", "20", "--steps", "4")
    assert code == 0, err
    expected = evaluate.compare_rules(
        net, data[:20], ["epsilon", lf.composite("epsilon-gamma-box", low=-5.0, high=5.0),
                         [lf.ZBox(-5.0, 5.0), "epsilon", "epsilon"]], steps=4)
    assert out == expected.table() + "\n"
    assert "epsilon-gamma-box (z-box-rule (low=-5" in out


def test_evaluate_bad_files(files, capsys, tmp_path):
    d, _, _ = files
    code, _, err = run_main(capsys, "evaluate", d / "model.npz", d / "flat.npy")
    assert code == 2 and "DATA must have shape" in err
    code, _, err = run_main(capsys, "evaluate", d / "model.npz", tmp_path / "none.npy")
    assert code == 2 and "DATA: no such file" in err
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    code, _, err = run_main(capsys, "evaluate", d / "model.npz", tmp_path / "junk.npy")
    assert code == 2 and "DATA" in err and len(err.strip().splitlines()) == 1


def test_evaluate_as_a_command(files):
    d, _, _ = files
    env = dict(os.environ)
    env["PYTHONPATH"] = PKG_PARENT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "lrpfast", "evaluate", str(d / "model.npz"),
                           str(d / "data.npy"), "--max-rows", "20"],
                          capture_output=True, text=True, env=env, cwd=HERE, timeout=120)
    assert proc.returncode == 0 and proc.stderr == ""
    assert re.search(r"^\* ", proc.stdout, re.M)


def test_demo_faithfulness_row():
    out = io.StringIO()
    outcome = cli.run_demo(seed=2026, out=out)
    text = out.getvalue()
    row = next(line for line in text.splitlines() if line.startswith("  MoRF AOPC"))
    values = [float(v) for v in row.split()[2:]]
    assert len(values) == 3
    assert values == [round(outcome["morf_aopc"][r], 3) for r in cli.DEMO_RULES]
    assert "on 200 fresh probes" in text
    # a MoRF order on the trained demo net drops p(class) far more than the
    # random order does (about 0.16 on this task)
    assert all(v > 0.3 for v in values)


def test_demo_faithfulness_is_morf_aopc():
    net = lf.Network(lf.datasets.SHAPE, [lf.Dense(16, "relu"), lf.Dense(2), lf.SoftMax()],
                     seed=0)
    X = lf.datasets.blobs(200, cli.DEMO_NOISE, seed=np.random.default_rng(4))[0]
    got = cli._faithfulness(net, X, ("epsilon", "gamma"))
    cmp = evaluate.compare_rules(net, X, ["epsilon", "gamma"])
    assert list(got) == cmp.labels
    for lab in cmp.labels:
        assert got[lab] == pytest.approx(cmp.morf[lab].aopc.mean(), rel=1e-12)


def test_readme_which_rule_outputs_are_what_the_code_prints(capsys, tmp_path, monkeypatch):
    """Each ```python block of "Which rule should I trust?" prints the ```console
    block that follows it."""
    readme = os.path.join(os.path.dirname(HERE), "README.md")
    if not os.path.exists(readme):
        pytest.skip("no README beside the tests")
    text = open(readme, encoding="utf-8").read()
    start = text.index("## Which rule should I trust?")
    section = text[start:text.index("\n## ", start + 10)]
    pairs = re.findall(r"```python\n(.*?)```\s*```console\n(.*?)```", section, re.S)
    assert len(pairs) == 2
    monkeypatch.chdir(tmp_path)
    for code, shown in pairs:
        if "sklearn" in code:
            pytest.importorskip("sklearn")
        exec(compile(code, "README example", "exec"), {"__name__": "__readme__"})
        assert capsys.readouterr().out == shown
