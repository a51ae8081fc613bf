"""Peak extra memory of explain_batch, measured with tracemalloc.

NumPy reports its allocations to tracemalloc, so the peak covers every array
explain_batch makes (activations, denominators, cached derived weights).  The
budget of issue 4: 4 x (weights + B x widest layer x itemsize).
"""

import tracemalloc

import numpy as np
import pytest

import lrpfast as lf
from conftest import BATCH, RULES, get_net, probes


@pytest.mark.parametrize("rule", RULES)
def test_explain_batch_peak_memory(rule):
    net = lf.Network((784,), [lf.Dense(1024, "relu"), lf.Dense(1024, "relu"),
                              lf.Dense(10), lf.SoftMax()], seed=0)
    X = probes(net, BATCH)
    weights = sum(l.weight.nbytes + l.bias.nbytes for l in net.dense_layers)
    widest = max([net.n_inputs] + [l.n_out for l in net.layers])
    budget = 4 * (weights + BATCH * widest * net.dtype.itemsize)
    tracemalloc.start()
    try:
        b = lf.explain_batch(net, X, rule)
        del b
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= budget, f"peak {peak / 2**20:.1f} MiB > budget {budget / 2**20:.1f} MiB"


def test_memory_fixture_nets_are_sane():
    # the benchmark nets are built once and shared; they must stay unchanged
    net = get_net("seed-36-16-12-2", "float32")
    before = [l.weight.tobytes() for l in net.dense_layers]
    lf.explain_batch(net, probes(net, 8), "gamma")
    assert before == [l.weight.tobytes() for l in net.dense_layers]
    assert np.isfinite(lf.explain(net, probes(net, 1)[0]).relevance).all()
