"""Shared by the importer tests: tolerances, rules, and the comparison of an
imported network's relevance with an explicitly built lrpfast network's."""

import numpy as np

import lrpfast as lf

# Forward vs the source framework, relative to max(1, |expected|).
FWD_TOL = {"float32": 2e-6, "float64": 1e-12}
RULES = [
    ("epsilon", dict(eps=0.05)),
    ("gamma", dict(gamma=0.25, eps=0.05)),
    ("alpha-beta", dict(alpha=2.0)),
]
BACKENDS = ["cython", "numpy"]
# Largest forward difference per (framework, dtype): printed by -s runs.
DIFFS = {}


def close_forward(framework, got, want, dtype, tol=None):
    """``|got - want| <= tol * max(1, |want|)`` (default tol: FWD_TOL[dtype]);
    the largest difference is kept in DIFFS."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    diff = float(np.abs(got - want).max())
    key = (framework, np.dtype(dtype).name)
    DIFFS[key] = max(DIFFS.get(key, 0.0), diff)
    scale = max(1.0, float(np.abs(want).max()))
    tol = FWD_TOL[np.dtype(dtype).name] if tol is None else tol
    assert diff <= tol * scale, f"{framework}: {diff:g}"


def same_relevance(net, ref, probes, rules=RULES):
    """``net`` (imported) and ``ref`` (built by hand) explain alike: same class,
    logit and relevance, for every rule and backend, probe by probe and as a
    batch."""
    tol = {"float32": 1e-5, "float64": 1e-12}[net.dtype.name]
    for rule, params in rules:
        for backend in BACKENDS:
            for x in probes:
                a = lf.explain(net, x, rule=rule, backend=backend, **params)
                b = lf.explain(ref, x, rule=rule, backend=backend, **params)
                assert a.explained_class == b.explained_class
                np.testing.assert_allclose(a.logit, b.logit, rtol=tol)
                scale = max(1e-30, float(np.abs(b.relevance).max()))
                np.testing.assert_allclose(a.relevance, b.relevance, rtol=0,
                                           atol=tol * scale)
            A = lf.explain_batch(net, np.stack(probes), rule=rule, backend=backend,
                                 **params)
            B = lf.explain_batch(ref, np.stack(probes), rule=rule, backend=backend,
                                 **params)
            np.testing.assert_array_equal(A.explained_class, B.explained_class)
            np.testing.assert_allclose(A.relevance, B.relevance, rtol=0,
                                       atol=tol * max(1e-30, np.abs(B.relevance).max()))


def set_params(net, params):
    """Assign ``params[k]`` (a dict) to ``net.layers[k]``, for the layers listed."""
    for k, p in params.items():
        for name, value in p.items():
            setattr(net.layers[k], name, value)
    return net
