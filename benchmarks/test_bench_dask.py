"""Dask and streaming against the in-memory explain_batch, in the same run.

Groups (each holds the in-memory call beside the contender, so the table's
ratio is measured within one run):

- ``dask-threads``: 20,000 x 784 float32 rows on 784-256-256-10, the
  threaded scheduler with its default pool and with one worker thread, on
  blocks aligned to explain_batch's chunk and on blocks that lrpfast.dask
  must rechunk (target: at most 1.2x in memory).
- ``dask-cluster``: the same on a LocalCluster of 2 worker processes with
  one thread each, the rows already on the workers, the results gathered
  back to the client.
- ``stream``: ``lrpfast explain MODEL DATA.npy --out OUT.npz`` on 10^6 rows
  of the 6x6 blob task, beside ``explain_batch`` on the file loaded whole.

Under ``--benchmark-disable`` (CI's check mode) every case runs once on a
small size and the cluster case is skipped, so the check stays quick.
"""

import numpy as np
import pytest

import lrpfast as lf
from lrpfast import cli
from lrpfast.explain import _chunk_size

da = pytest.importorskip("dask.array")
lfd = pytest.importorskip("lrpfast.dask")


def _checking(request):
    return request.config.getoption("benchmark_disable")


def _mlp():
    net = lf.Network((784,), [lf.Dense(256, "relu"), lf.Dense(256, "relu"), lf.Dense(10),
                              lf.SoftMax()], dtype="float32", seed=0)
    rng = np.random.default_rng(1)
    for layer in net.dense_layers:
        layer.bias = rng.normal(0, 0.05, layer.bias.shape)
    return net


def _rows(request, full):
    return 2_000 if _checking(request) else full


def _run(benchmark, fn, rounds=3):
    return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("contender", ["in-memory", "dask-threads", "dask-threads-1-worker",
                                       "dask-threads-unaligned"])
def test_dask_threads(benchmark, request, contender):
    net = _mlp()
    B = _rows(request, 20_000)
    X = np.random.default_rng(2).uniform(0, 1, (B, 784)).astype(np.float32)
    benchmark.group = f"dask-threads {B}x784 float32 784-256-256-10"
    # Blocks of about 5,000 rows: a multiple of explain_batch's chunk (aligned,
    # as lrpfast.dask would rechunk them), or 5,000 exactly (rechunked: a copy).
    step = _chunk_size(net, None)
    rows = 5_000 if contender.endswith("unaligned") else step * round(5_000 / step)
    if contender == "in-memory":
        fn = lambda: lf.explain_batch(net, X)                           # noqa: E731
    else:
        # Dask's default pool (one thread per core), or one thread.
        workers = 1 if contender.endswith("1-worker") else None
        dX = da.from_array(X, chunks=(rows, 784))
        fn = lambda: lfd.explain_batch(net, dX).compute(            # noqa: E731
            scheduler="threads", num_workers=workers)
    got = _run(benchmark, fn, rounds=5)
    assert got.relevance.tobytes() == lf.explain_batch(net, X).relevance.tobytes()


@pytest.fixture(scope="module")
def client(request):
    if _checking(request):
        pytest.skip("the cluster case runs only when benchmarking")
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, memory_limit=0)
    c = distributed.Client(cluster, set_as_default=False)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


@pytest.mark.parametrize("contender", ["in-memory", "local-cluster-2x1"])
def test_dask_cluster(benchmark, request, client, contender):
    net = _mlp()
    B = 20_000
    X = np.random.default_rng(2).uniform(0, 1, (B, 784)).astype(np.float32)
    benchmark.group = f"dask-cluster {B}x784 float32 784-256-256-10"
    if contender == "in-memory":
        fn = lambda: lf.explain_batch(net, X, n_threads=1)            # noqa: E731
    else:
        dX = client.persist(da.from_array(X, chunks=(5_000, 784)))   # rows on the workers
        res = lfd.explain_batch(net, dX, n_threads=1)

        def fn():
            values = client.gather(client.compute(list(res.arrays().values())))
            return lf.BatchExplanation(forced=False, rule=res.rule,
                                       **dict(zip(lfd.FIELDS, values)))
    got = _run(benchmark, fn)
    want = lf.explain_batch(net, X, n_threads=1)
    assert got.relevance.tobytes() == want.relevance.tobytes()


@pytest.fixture(scope="module")
def blob_files(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("stream")
    X, y = lf.datasets.blobs(240, noise=0.1, seed=0)
    net = lf.Network((1, 6, 6), [lf.Dense(16, "relu"), lf.Dense(12, "relu"),
                                 lf.Dense(2, "linear"), lf.SoftMax()], seed=0)
    lf.train(net, X, y, epochs=20, seed=0)
    net.save(d / "model.npz")
    B = 10_000 if _checking(request) else 1_000_000
    np.save(d / "data.npy", lf.datasets.blobs(B, noise=0.3, seed=1)[0].astype(np.float32))
    return d, B


@pytest.mark.parametrize("contender", ["in-memory", "cli-stream"])
def test_stream(benchmark, blob_files, contender):
    d, B = blob_files
    benchmark.group = f"stream {B} rows blob 1x6x6 float32"
    if contender == "in-memory":
        net = lf.load(d / "model.npz")
        fn = lambda: lf.explain_batch(net, np.load(d / "data.npy")).relevance.shape  # noqa
    else:
        argv = ["explain", str(d / "model.npz"), str(d / "data.npy"), "--out",
                str(d / "out.npz"), "--no-progress"]

        def fn():
            assert cli.main(argv) == 0
            with np.load(d / "out.npz") as z:
                return z["relevance"].shape
    assert _run(benchmark, fn, rounds=2) == (B, 1, 6, 6)
