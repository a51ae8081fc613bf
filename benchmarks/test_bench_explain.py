"""Benchmarks: lrpfast against its NumPy reference and the PyTorch LRP peers.

``pytest benchmarks/ --benchmark-only`` times the grid;
``--benchmark-disable`` (as in CI) runs every case once as a check.  Each
pytest-benchmark group is one network x rule x mode x dtype, and its rows are
the contenders: ``lrpfast`` (the kernels), ``reference`` (``backend="numpy"``),
``zennit`` and ``captum`` when they import, and for batches ``matmul-floor``,
the matrix products the rule needs timed as bare NumPy matmuls.
"""

import time

import numpy as np
import pytest

import lrpfast as lf
from conftest import BATCH, DTYPES, NETS, RULES, get_net, matmul_floor, probes, torch_model

MODES = ["single", "batch"]
CONTENDERS = ["lrpfast", "reference", "zennit", "captum", "matmul-floor"]


def _group(benchmark, net_name, rule, mode, dtype):
    benchmark.group = f"{net_name} {rule} {mode}{BATCH if mode == 'batch' else ''} {dtype}"


def _run(benchmark, mode, fn, *args, **kwargs):
    # Batches of the wide nets take up to seconds a call: a few rounds suffice.
    if mode == "batch":
        return benchmark.pedantic(fn, args, kwargs, rounds=3, iterations=1,
                                  warmup_rounds=1)
    # One probe: warm up (plans, caches, CPU clock), then rounds of >= 1 ms
    # for at most ~2 s, so microsecond calls are not timer-bound.
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    dt = max(time.perf_counter() - t0, 1e-7)
    iterations = max(1, int(1e-3 / dt))
    rounds = max(5, min(200, int(2.0 / (dt * iterations))))
    return benchmark.pedantic(fn, args, kwargs, rounds=rounds, iterations=iterations,
                              warmup_rounds=3)


def _zennit_attributor(model, rule):
    try:
        from zennit import rules as zr
        from zennit.attribution import Gradient
        from zennit.composites import LayerMapComposite
    except Exception as exc:  # zennit imports torchvision, which may not import
        pytest.skip(f"zennit cannot be imported here: {exc}")
    import torch
    r = {"epsilon": lambda: zr.Epsilon(1e-2, zero_params="bias"),
         "gamma": lambda: zr.Gamma(0.25, stabilizer=1e-2, zero_params="bias"),
         "gamma-generalized": lambda: zr.Gamma(0.25, stabilizer=1e-2, zero_params="bias"),
         "alpha-beta": lambda: zr.AlphaBeta(2.0, 1.0, zero_params="bias"),
         "z-plus": lambda: zr.ZPlus(zero_params="bias"),
         "w-square": lambda: zr.WSquare(zero_params="bias"),
         "flat": lambda: zr.Flat()}[rule]()
    return Gradient(model=model, composite=LayerMapComposite([(torch.nn.Linear, r)]))


def _torch_peer(peer, net, rule, X):
    """A callable explaining X (B, n) with the peer, seeded with the top logit."""
    torch = pytest.importorskip("torch")
    model = torch_model(net)
    xt = torch.from_numpy(np.ascontiguousarray(X.reshape(X.shape[0], -1)))
    if peer == "captum":
        pytest.importorskip("captum")
        from captum.attr import LRP
        from captum.attr._utils.lrp_rules import EpsilonRule, GammaRule
        if rule not in ("epsilon", "gamma"):
            pytest.skip("captum has epsilon, gamma and alpha=1 only")
        for mod in model:
            if isinstance(mod, torch.nn.Linear):
                mod.rule = EpsilonRule(1e-2) if rule == "epsilon" else GammaRule(0.25)
        lrp = LRP(model)
        with torch.no_grad():
            target = model(xt).argmax(1)
        return lambda: lrp.attribute(xt, target=target)
    attributor = _zennit_attributor(model, rule)

    def run():
        x = xt.clone().requires_grad_(True)
        with attributor:
            out = model(x)
            grad = torch.zeros_like(out)
            grad[torch.arange(len(out)), out.argmax(1)] = 1.0
            _, rel = attributor(x, grad * out)
        return rel
    return run


@pytest.mark.parametrize("contender", CONTENDERS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("net_name", list(NETS))
def test_explain(benchmark, net_name, rule, mode, dtype, contender):
    if mode == "batch" and net_name.startswith("seed") and contender != "lrpfast":
        pytest.skip("the seed net's batch is only timed for lrpfast")
    net = get_net(net_name, dtype)
    X = probes(net, BATCH if mode == "batch" else 1)
    _group(benchmark, net_name, rule, mode, dtype)
    if contender in ("lrpfast", "reference"):
        backend = "cython" if contender == "lrpfast" else "numpy"
        if mode == "single":
            e = _run(benchmark, mode, lf.explain, net, X[0], rule, backend=backend)
            assert e.relevance.shape == net.input_shape
        else:
            b = _run(benchmark, mode, lf.explain_batch, net, X, rule, backend=backend)
            assert b.relevance.shape == X.shape
    elif contender == "matmul-floor":
        if mode == "single":
            pytest.skip("the floor is defined for batches")
        _run(benchmark, mode, matmul_floor(net, rule, X))
    else:
        fn = _torch_peer(contender, net, rule, X)
        rel = _run(benchmark, mode, fn)
        assert tuple(rel.shape) == (X.shape[0], net.n_inputs)
