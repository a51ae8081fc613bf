"""Benchmark: pixel-flipping curves against their forward floor.

Issue 9's target: 256 probes of a 784-256-256-10 network, 8 features per
step (98 steps, 99 curve points each), within 1.5x the time of 99 bare
batched forwards of the same 256 rows (``forward-floor``, in the same
pytest-benchmark group); moonshot 0.5x.  lrpfast updates the first layer's
pre-activation by the rank-8 change of each step instead of recomputing it,
so it can go below the floor.

``python benchmarks/table.py bench.json`` prints the group with the ratio in
its "÷ floor" column.
"""

import numpy as np
import pytest

import lrpfast as lf
from conftest import make_net

B, K = 256, 8
SHAPE, HIDDEN, N_OUT = (784,), [256, 256], 10

_nets = {}


def flip_net(dtype):
    if dtype not in _nets:
        _nets[dtype] = make_net(SHAPE, HIDDEN, N_OUT, dtype)
    return _nets[dtype]


@pytest.mark.parametrize("contender", ["lrpfast", "forward-floor"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pixel_flipping(benchmark, dtype, contender):
    net = flip_net(dtype)
    rng = np.random.default_rng(2)
    X = rng.uniform(0, 1, (B,) + SHAPE).astype(net.dtype)
    R = rng.normal(size=X.shape)
    points = -(-net.n_inputs // K) + 1                       # 99
    benchmark.group = f"flip-784-256-256-10 morf-k{K} batch{B} {dtype}"
    if contender == "lrpfast":
        res = benchmark.pedantic(lf.evaluate.pixel_flipping, (net, X, R),
                                 {"features_per_step": K}, rounds=5, iterations=1,
                                 warmup_rounds=1)
        assert res.curves.shape == (B, points)
    else:
        def floor():
            for _ in range(points):
                net.forward(X)
        benchmark.pedantic(floor, rounds=5, iterations=1, warmup_rounds=1)
