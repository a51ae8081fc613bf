"""Shared fixtures of the benchmark suite: networks, probes, peer models."""

import numpy as np
import pytest

import lrpfast as lf

# name -> (input shape, hidden widths, classes)
NETS = {
    "seed-36-16-12-2": ((1, 6, 6), [16, 12], 2),
    "mlp-784-1024-1024-10": ((784,), [1024, 1024], 10),
    "wide-4096-4096-10": ((4096,), [4096], 10),
}
RULES = ["epsilon", "gamma", "alpha-beta", "z-plus", "w-square", "flat",
         "gamma-generalized"]
DTYPES = ["float32", "float64"]
BATCH = 1024

# rule -> (forward, backward) matrix products per dense layer (see matmul_floor)
FLOOR = {"epsilon": (1, 1), "gamma": (2, 1), "alpha-beta": (2, 2), "z-plus": (2, 1),
         "w-square": (1, 1), "flat": (1, 0), "gamma-generalized": (3, 2)}

_cache = {}


def get_net(name, dtype):
    """A trained-looking network: He weights, small non-zero biases, SoftMax head."""
    key = ("net", name, dtype)
    if key not in _cache:
        _cache[key] = make_net(*NETS[name], dtype)
    return _cache[key]


def make_net(shape, hidden, n_out, dtype):
    """ReLU layers of widths ``hidden``, a linear head and a SoftMax: He weights
    (seed 0), small non-zero biases (seed 1)."""
    layers = [lf.Dense(h, "relu") for h in hidden] + [lf.Dense(n_out), lf.SoftMax()]
    net = lf.Network(shape, layers, dtype=dtype, seed=0)
    rng = np.random.default_rng(1)
    for layer in net.dense_layers:
        layer.bias = rng.normal(0, 0.05, layer.bias.shape)
    return net


def probes(net, n):
    """n non-negative probes (pixel-like inputs), in the network's dtype."""
    rng = np.random.default_rng(2)
    return rng.uniform(0, 1, (n,) + net.input_shape).astype(net.dtype)


def torch_model(net):
    """The same network as a torch ``nn.Sequential`` (logits, no SoftMax)."""
    torch = pytest.importorskip("torch")
    key = ("torch", id(net))
    if key not in _cache:
        mods = []
        for layer in net.dense_layers:
            lin = torch.nn.Linear(layer.n_in, layer.n_out)
            lin = lin.double() if net.dtype == np.float64 else lin
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(layer.weight.T)))
                lin.bias.copy_(torch.from_numpy(layer.bias.copy()))
            mods.append(lin)
            if layer.activation == "relu":
                mods.append(torch.nn.ReLU())
        _cache[key] = torch.nn.Sequential(*mods).eval()
    return _cache[key]


def matmul_floor(net, rule, X):
    """The matrix products a rule needs for a batch, as plain NumPy matmuls.

    Per dense layer, forward ``A @ W`` plus backward ``S @ W.T``, for
    non-negative inputs: epsilon 1 + 1; gamma 2 + 1 (``A @ W'``); alpha-beta
    2 + 2 (``P = A @ W+``, and ``N = s - P`` from the forward product ``s``;
    ``QP @ W+.T``, ``QN @ W-.T``); z-plus 2 + 1; w-square 1 + 1 (``W²`` and
    its column sums cached); flat 1 + 0; gamma-generalized 3 + 2 (``P``,
    ``N``; two backward products).
    """
    counts = FLOOR[rule]
    rng = np.random.default_rng(3)
    B = X.shape[0]
    shapes = [(layer.n_in, layer.n_out) for layer in net.dense_layers]
    mats = [(rng.random((B, n), dtype=np.float64).astype(net.dtype),
             rng.random((n, m), dtype=np.float64).astype(net.dtype),
             rng.random((B, m), dtype=np.float64).astype(net.dtype)) for n, m in shapes]

    def run():
        for A, W, S in mats:
            for _ in range(counts[0]):
                A @ W
            for _ in range(counts[1]):
                S @ W.T
    return run
