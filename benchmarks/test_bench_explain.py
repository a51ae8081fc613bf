"""Benchmarks: lrpfast's kernels against the NumPy reference, side by side.

Run ``pytest benchmarks/ --benchmark-only`` (``--benchmark-disable`` just
checks that every case runs).  Each group holds one network x rule x mode x
dtype; its rows are the contenders.
"""

import numpy as np
import pytest

import lrpfast as lf

NETS = {
    "seed-36-16-12-2": ((1, 6, 6), [16, 12], 2),
    "mlp-784-1024-1024-10": ((784,), [1024, 1024], 10),
    "wide-4096-4096-10": ((4096,), [4096], 10),
}
RULES = ["epsilon", "gamma", "alpha-beta"]
BATCH = 1024


def make_net(name, dtype):
    shape, hidden, n_out = NETS[name]
    layers = [lf.Dense(h, "relu") for h in hidden] + [lf.Dense(n_out), lf.SoftMax()]
    net = lf.Network(shape, layers, dtype=dtype, seed=0)
    rng = np.random.default_rng(1)
    for layer in net.dense_layers:
        layer.bias = rng.normal(0, 0.05, layer.bias.shape)
    return net


_NETS = {}


def get_net(name, dtype):
    if (name, dtype) not in _NETS:
        _NETS[(name, dtype)] = make_net(name, dtype)
    return _NETS[(name, dtype)]


def probes(net, n):
    rng = np.random.default_rng(2)
    return rng.uniform(0, 1, (n,) + net.input_shape).astype(net.dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("net_name", list(NETS))
@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_single(benchmark, net_name, rule, dtype, backend):
    net = get_net(net_name, dtype)
    x = probes(net, 1)[0]
    benchmark.group = f"single {net_name} {rule} {dtype}"
    e = benchmark(lf.explain, net, x, rule, backend=backend)
    assert e.relevance.shape == net.input_shape


@pytest.mark.parametrize("dtype", ["float32"])
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("net_name", ["mlp-784-1024-1024-10"])
@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_batch(benchmark, net_name, rule, dtype, backend):
    net = get_net(net_name, dtype)
    X = probes(net, BATCH)
    benchmark.group = f"batch{BATCH} {net_name} {rule} {dtype}"
    b = benchmark.pedantic(lf.explain_batch, (net, X, rule), {"backend": backend},
                           rounds=3, iterations=1)
    assert b.relevance.shape == X.shape
