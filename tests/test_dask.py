"""lrpfast.dask: lazy, one-pass, byte-equal to the in-memory explain_batch.

The reference of every comparison is :func:`lrpfast.explain_batch` on the
whole NumPy array (a different code path: no blocks, no graph, no
serialisation); importance is checked against plain NumPy loops.
"""

import importlib
import os
import signal
import sys
import time

import numpy as np
import pytest

import lrpfast as lf

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
lfd = pytest.importorskip("lrpfast.dask")

FIELDS = ("relevance", "explained_class", "logits", "outputs", "stats", "max_residual")
RULES = ("epsilon", "gamma", "alpha-beta")


def make_net(dtype="float64", shape=(1, 6, 6), n_out=3, seed=0):
    net = lf.Network(shape, [lf.Dense(16, "relu"), lf.Dense(12, "relu"), lf.Dense(n_out),
                             lf.SoftMax()], dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for layer in net.dense_layers:
        layer.bias = rng.normal(0, 0.3, layer.bias.shape)
    return net


def probes(n, shape=(1, 6, 6), seed=2):
    return np.random.default_rng(seed).uniform(0, 1, (n,) + shape)


def assert_same_bytes(got, want):
    """Every field of two BatchExplanations: same dtype, shape and bytes."""
    assert isinstance(got, lf.BatchExplanation)
    for name in FIELDS:
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert a.tobytes() == b.tobytes(), f"{name} differs"
    assert (got.forced, got.rule) == (want.forced, want.rule)


# ---------------------------------------------------------------------------
# Results equal the in-memory ones, byte for byte
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_threads_byte_equal(rule, dtype):
    net = make_net(dtype)
    X = probes(1000)
    want = lf.explain_batch(net, X, rule=rule, chunk_size=100)
    # Row blocks of 130 (not aligned to chunk_size) and split spatial axes.
    dX = da.from_array(X, chunks=(130, 1, 3, 2))
    res = lfd.explain_batch(net, dX, rule=rule, chunk_size=100)
    assert res.relevance.chunks[1:] == ((1,), (6,), (6,))
    assert_same_bytes(res.compute(scheduler="threads"), want)
    # The batch's Explanation objects work on the computed result.
    got = res.compute(scheduler="threads")
    assert got[7].boundaries == want[7].boundaries


def test_default_chunking_784_byte_equal():
    # The case of the speed target, small: default chunk_size, float64.
    net = lf.Network((784,), [lf.Dense(64, "relu"), lf.Dense(10), lf.SoftMax()],
                     dtype="float64", seed=0)
    X = np.random.default_rng(0).uniform(0, 1, (5000, 784))
    want = lf.explain_batch(net, X)
    assert_same_bytes(lfd.explain_batch(net, da.from_array(X, chunks=1500)).compute(), want)


def test_forced_class_per_row():
    net = make_net()
    X = probes(500)
    forced = np.random.default_rng(3).integers(0, 3, 500)
    want = lf.explain_batch(net, X, forced_class=forced, chunk_size=64)
    dX = da.from_array(X, chunks=(100, 1, 6, 6))
    for f in (forced, da.from_array(forced, chunks=77), list(forced)):
        got = lfd.explain_batch(net, dX, forced_class=f, chunk_size=64).compute()
        assert_same_bytes(got, want)
        assert got.forced
    # one class for every row
    got = lfd.explain_batch(net, dX, forced_class=2, chunk_size=64).compute()
    assert_same_bytes(got, lf.explain_batch(net, X, forced_class=2, chunk_size=64))


def test_output_relevance_per_row():
    net = make_net()
    X = probes(300)
    seed = np.random.default_rng(6).normal(size=(300, 3))
    want = lf.explain_batch(net, X, output_relevance=seed, chunk_size=50)
    dX = da.from_array(X, chunks=(100, 1, 6, 6))
    for given in (seed, da.from_array(seed, chunks=(60, 3))):
        res = lfd.explain_batch(net, dX, output_relevance=given, chunk_size=50)
        got = res.compute()
        assert_same_bytes(got, want)
        assert got.output_relevance.tobytes() == want.output_relevance.tobytes()
    with pytest.raises(ValueError, match="output_relevance"):
        lfd.explain_batch(net, dX, output_relevance=seed[:10])
    with pytest.raises(ValueError, match="cannot be combined"):
        lfd.explain_batch(net, dX, output_relevance=seed, forced_class=1)
    with pytest.raises(ValueError, match="layers"):
        lfd.explain_batch(net, dX, layers=True)


def test_int_input_and_empty_blocks():
    net = make_net()
    X = np.random.default_rng(4).integers(0, 3, (300, 1, 6, 6))
    dX = da.from_array(X, chunks=((100, 0, 200), (1,), (6,), (6,)))
    got = lfd.explain_batch(net, dX, chunk_size=100).compute()
    assert_same_bytes(got, lf.explain_batch(net, X, chunk_size=100))


def test_processes_scheduler_byte_equal():
    net = make_net()
    X = probes(400)
    res = lfd.explain_batch(net, da.from_array(X, chunks=(100, 1, 6, 6)), rule="gamma",
                            chunk_size=100)
    got = res.compute(scheduler="processes", num_workers=2)
    assert_same_bytes(got, lf.explain_batch(net, X, rule="gamma", chunk_size=100))


def test_network_pickles_read_only():
    import pickle

    net = make_net("float32")
    back = pickle.loads(pickle.dumps(net))
    for a, b in zip(net.dense_layers, back.dense_layers):
        assert b.weight.tobytes() == a.weight.tobytes()
        assert not b.weight.flags.writeable and not b.bias.flags.writeable
        with pytest.raises(ValueError):
            b.weight[0, 0] = 1.0
    X = probes(50)
    assert_same_bytes(lf.explain_batch(back, X), lf.explain_batch(net, X))


# ---------------------------------------------------------------------------
# Laziness, one pass, the network under one key
# ---------------------------------------------------------------------------

@pytest.fixture
def block_calls(monkeypatch):
    """Count the calls of the block function (patched before a graph is built)."""
    calls = []
    real = lfd._explain_block

    def counting(x, *args):
        block = x
        while isinstance(block, list):      # one chunk per non-batch axis
            block = block[0]
        calls.append(block.shape[0])
        return real(x, *args)

    monkeypatch.setattr(lfd, "_explain_block", counting)
    return calls


def test_building_computes_nothing(block_calls):
    net = make_net()
    X = da.random.random((1_000_000, 1, 6, 6), chunks=(50_000, 1, 6, 6))
    res = lfd.explain_batch(net, X)
    imp = lfd.importance(res, by_class=True)
    assert block_calls == []
    assert res.relevance.shape == X.shape and imp.shape == (3, 1, 6, 6)
    assert len(res) == 1_000_000


def test_compute_is_one_pass(block_calls):
    net = make_net()
    X = probes(1000)
    res = lfd.explain_batch(net, da.from_array(X, chunks=(200, 1, 6, 6)), chunk_size=100)
    res.compute(scheduler="threads")
    assert sorted(block_calls) == [200] * 5          # each block explained once
    # storing several fields together is one pass too
    block_calls.clear()
    dask.compute(res.relevance.sum(), res.explained_class, res.max_residual.max())
    assert sorted(block_calls) == [200] * 5


def test_graph_holds_network_under_one_key():
    from dask.core import get_dependencies

    net = make_net()
    res = lfd.explain_batch(net, da.from_array(probes(1000), chunks=(100, 1, 6, 6)),
                            chunk_size=100)
    from dask.highlevelgraph import HighLevelGraph

    graph = dict(HighLevelGraph.merge(*(a.__dask_graph__() for a in res.arrays().values())))

    def holds_net(task):
        return isinstance(task, lf.Network) or isinstance(getattr(task, "value", None),
                                                          lf.Network)

    net_keys = [k for k, v in graph.items() if holds_net(v)]
    assert len(net_keys) == 1
    explain_keys = [k for k in graph if isinstance(k, tuple)
                    and k[0].startswith("lrpfast-explain-")]
    assert len(explain_keys) == 10
    for k in explain_keys:
        assert net_keys[0] in get_dependencies(graph, k)
    # The same network content gives the same key (workers can reuse it).
    again = lfd.explain_batch(net, da.from_array(probes(10), chunks=5), chunk_size=5)
    assert any(net_keys[0] == k for k in dict(again.relevance.__dask_graph__()))


# ---------------------------------------------------------------------------
# importance: a lazy reduction, the in-memory definition
# ---------------------------------------------------------------------------

def numpy_importance(relevance, classes, n_out, by_class):
    mag = np.abs(relevance.astype(np.float64))
    if not by_class:
        return mag.mean(axis=0)
    out = np.zeros((n_out,) + relevance.shape[1:])
    for k in range(n_out):
        rows = [i for i in range(len(classes)) if classes[i] == k]
        if rows:
            out[k] = sum(mag[i] for i in rows) / len(rows)
    return out


@pytest.mark.parametrize("by_class", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_importance_equals_numpy(by_class, dtype):
    net = make_net(dtype, n_out=4)
    X = probes(700)
    # classes 0, 2 and 3 only: class 1 is explained by no row
    forced = np.random.default_rng(5).choice([0, 2, 3], 700)
    res = lfd.explain_batch(net, da.from_array(X, chunks=(128, 1, 6, 6)),
                            forced_class=forced, chunk_size=64)
    lazy = lfd.importance(res, by_class=by_class)
    assert isinstance(lazy, da.Array)
    got = lazy.compute()
    b = lf.explain_batch(net, X, forced_class=forced, chunk_size=64)
    want = numpy_importance(b.relevance, b.explained_class, 4, by_class)
    assert got.dtype == np.float64 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    if by_class:
        assert (got[1] == 0).all() and (got[[0, 2, 3]] > 0).any(axis=(1, 2, 3)).all()
    if hasattr(lf.BatchExplanation, "importance"):      # the in-memory method
        np.testing.assert_allclose(got, b.importance(by_class=by_class), rtol=1e-12, atol=0)


def test_importance_rejects_bad_arguments():
    net = make_net()
    res = lfd.explain_batch(net, da.from_array(probes(10), chunks=5))
    with pytest.raises(TypeError, match="by_class"):
        lfd.importance(res, by_class="yes")
    with pytest.raises(TypeError, match="DaskBatchExplanation"):
        lfd.importance(res.compute())


# ---------------------------------------------------------------------------
# Errors: at build time, naming the argument
# ---------------------------------------------------------------------------

def test_bad_input_is_refused_when_building(block_calls):
    net = make_net()
    dX = da.from_array(probes(20), chunks=10)
    with pytest.raises(TypeError, match="dask array"):
        lfd.explain_batch(net, probes(20))
    with pytest.raises(TypeError, match="Network"):
        lfd.explain_batch("net", dX)
    with pytest.raises(ValueError, match=r"X must have shape \(B, 1, 6, 6\)"):
        lfd.explain_batch(net, da.zeros((20, 36), chunks=10))
    with pytest.raises(TypeError, match="real numbers"):
        lfd.explain_batch(net, da.zeros((20, 1, 6, 6), chunks=10, dtype=complex))
    with pytest.raises(ValueError, match="eps"):
        lfd.explain_batch(net, dX, eps=-1.0)
    with pytest.raises(ValueError, match="rule"):
        lfd.explain_batch(net, dX, rule="nope")
    with pytest.raises(TypeError):
        lfd.explain_batch(net, dX, no_such_keyword=1)
    with pytest.raises(ValueError, match="forced_class"):
        lfd.explain_batch(net, dX, forced_class=np.zeros(19, int))
    with pytest.raises(ValueError, match="forced_class"):
        lfd.explain_batch(net, dX, forced_class=7)
    with pytest.raises(ValueError, match="ProgressBar"):
        lfd.explain_batch(net, dX, progress=True)
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        lfd.explain_batch(net, dX[dX[:, 0, 0, 0] > 0.5])
    with pytest.raises(ValueError, match="empty"):
        lfd.explain_batch(net, dX[:0])
    assert block_calls == []


def test_nan_in_a_block_raises_at_compute():
    net = make_net()
    X = probes(300)
    X[250, 0, 3, 3] = np.nan
    res = lfd.explain_batch(net, da.from_array(X, chunks=(100, 1, 6, 6)), chunk_size=100)
    with pytest.raises(ValueError, match=r"X contains NaN in row 250 \(.*rows 200 to 299"):
        res.compute(scheduler="synchronous")


def test_missing_dask_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.array", None)
    monkeypatch.delitem(sys.modules, "lrpfast.dask")
    try:
        with pytest.raises(ImportError, match=r'pip install "lrpfast\[dask\]"'):
            importlib.import_module("lrpfast.dask")
    finally:
        monkeypatch.undo()
        importlib.import_module("lrpfast.dask")


# ---------------------------------------------------------------------------
# Zarr: a data set on disk, explained in parallel, written to disk
# ---------------------------------------------------------------------------

def test_zarr_round_trip(tmp_path):
    pytest.importorskip("zarr")
    net = make_net("float32")
    X = probes(600).astype(np.float32)
    da.from_array(X, chunks=(150, 1, 6, 6)).to_zarr(str(tmp_path / "x.zarr"))
    Xz = da.from_zarr(str(tmp_path / "x.zarr"))
    res = lfd.explain_batch(net, Xz, chunk_size=50)
    dask.compute(res.relevance.to_zarr(str(tmp_path / "rel.zarr"), compute=False),
                 res.explained_class.to_zarr(str(tmp_path / "cls.zarr"), compute=False),
                 scheduler="threads")
    want = lf.explain_batch(net, X, chunk_size=50)
    rel = da.from_zarr(str(tmp_path / "rel.zarr")).compute()
    cls = da.from_zarr(str(tmp_path / "cls.zarr")).compute()
    assert rel.dtype == np.float32 and rel.tobytes() == want.relevance.tobytes()
    assert cls.tobytes() == want.explained_class.tobytes()


# ---------------------------------------------------------------------------
# dask.distributed: a LocalCluster of 2 worker processes, 1 thread each
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, memory_limit=0)
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def test_cluster_byte_equal(client):
    net = make_net()
    X = probes(2000)
    # Workers run BLAS on one thread: compare with n_threads=1 in memory.
    want = lf.explain_batch(net, X, rule="epsilon", chunk_size=100, n_threads=1)
    res = lfd.explain_batch(net, da.from_array(X, chunks=(250, 1, 6, 6)), rule="epsilon",
                            chunk_size=100, n_threads=1)
    assert_same_bytes(res.compute(), want)          # the client is the default scheduler
    imp = lfd.importance(res, by_class=True).compute()
    np.testing.assert_allclose(
        imp, numpy_importance(want.relevance, want.explained_class, 3, True), rtol=1e-12)


def test_cluster_survives_a_killed_worker(client):
    """Kill one worker process mid-computation: the result is still exact."""
    client.wait_for_workers(2, timeout=60)
    net = make_net()
    X = probes(2400)
    want = lf.explain_batch(net, X, rule="alpha-beta", chunk_size=100, n_threads=1)
    # Slow blocks (0.25 s each, 12 per worker) so the kill lands mid-way.
    # (a lambda: cloudpickle sends it by value, workers need not import this file)
    slow = da.from_array(X, chunks=(100, 1, 6, 6)).map_blocks(
        lambda block: (time.sleep(0.25), block)[1], dtype=X.dtype)
    res = lfd.explain_batch(net, slow, rule="alpha-beta", chunk_size=100, n_threads=1)
    futures = client.compute(list(res.arrays().values()))
    deadline = time.monotonic() + 60
    while True:     # both workers busy and some results held: then kill one
        busy = [w for w, keys in client.processing().items() if keys]
        held = sum(len(keys) for keys in client.has_what().values())
        if len(busy) == 2 and held >= 4:
            break
        assert time.monotonic() < deadline, "the computation never got going"
        time.sleep(0.02)
    victim = busy[0]
    pid = client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)
    assert not all(f.done() for f in futures), "killed too late to test anything"
    distributed = pytest.importorskip("distributed")
    distributed.wait(futures, timeout=120)             # bounded: never hangs CI
    values = client.gather(futures)                    # the lost tasks were retried
    got = lf.BatchExplanation(forced=res.forced, rule=res.rule, _layers=res._layers,
                              _rules=res._rules, **dict(zip(FIELDS, values)))
    assert_same_bytes(got, want)
    assert pid not in client.run(os.getpid).values()      # that process is gone
