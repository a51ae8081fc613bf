"""from_sklearn on Pipelines: scalers (Affine) and PCA/TruncatedSVD (linear Dense)
before an MLP.

The forward is compared with ``predict_proba``/``predict``; the relevance with
a lrpfast network built by hand, whose Affine and Dense parameters are read
off the fitted steps by probing them (``transform`` of 0 and of unit
vectors), independently of the importer's formulas.
"""

import warnings

import numpy as np
import pytest

import lrpfast as lf
from _interop_common import close_forward, same_relevance, set_params

pytest.importorskip("sklearn")
from sklearn.decomposition import PCA, TruncatedSVD                    # noqa: E402
from sklearn.exceptions import ConvergenceWarning                      # noqa: E402
from sklearn.neural_network import MLPClassifier, MLPRegressor         # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline                   # noqa: E402
from sklearn.preprocessing import (MaxAbsScaler, MinMaxScaler,         # noqa: E402
                                   PolynomialFeatures, RobustScaler, StandardScaler)

# A float32 network against the float64 Pipeline: raw features up to ~300 are
# rounded to float32 before scaling and whitening (1e-6 measured).
F32_TOL = 1e-5
_SK_ACT = {"relu": "relu", "tanh": "tanh", "logistic": "sigmoid", "identity": "linear"}


def _data(n=200, seed=0):
    """Raw features on very different scales and offsets, 3 classes."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)) * [1, 10, 100, 0.1, 3, 5] + [0, 5, -50, 1, 0, 2]
    y = (X[:, 0] + X[:, 1] / 10 > 0.5).astype(int) + (X[:, 2] > -50)
    return X, y


def _fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def _probe_affine(step, n):
    """(scale, shift) of an element-wise step, read off transform()."""
    shift = step.transform(np.zeros((1, n)))[0]
    return step.transform(np.ones((1, n)))[0] - shift, shift


def _probe_linear(step, n):
    """(W, b) of a linear step: rows of transform(I) - transform(0)."""
    b = step.transform(np.zeros((1, n)))[0]
    return step.transform(np.eye(n)) - b, b


def _by_hand(pipe, dtype):
    """The Pipeline written out with lrpfast layers, parameters probed."""
    layers, params, n = [], {}, pipe.n_features_in_
    for _, step in pipe.steps[:-1]:
        if isinstance(step, str):
            continue
        if isinstance(step, (PCA, TruncatedSVD)):
            W, b = _probe_linear(step, n)
            layers.append(lf.Dense(W.shape[1]))
            params[len(layers) - 1] = dict(weight=W, bias=b)
            n = W.shape[1]
        else:
            s, t = _probe_affine(step, n)
            layers.append(lf.Affine())
            params[len(layers) - 1] = dict(scale=s, shift=t)
    mlp = pipe.steps[-1][1]
    for k, (W, b) in enumerate(zip(mlp.coefs_, mlp.intercepts_)):
        last = k == len(mlp.coefs_) - 1
        layers.append(lf.Dense(W.shape[1], "linear" if last else _SK_ACT[mlp.activation]))
        params[len(layers) - 1] = dict(weight=W, bias=b)
    if getattr(mlp, "out_activation_", None) == "softmax":
        layers.append(lf.SoftMax())
    net = lf.Network((pipe.n_features_in_,), layers, dtype=dtype, seed=0)
    return set_params(net, params)


PIPES = {
    "standard": lambda: [StandardScaler()],
    "minmax+pca-whiten": lambda: [MinMaxScaler((-1, 2)), PCA(4, whiten=True)],
    "maxabs+robust+svd": lambda: [MaxAbsScaler(), RobustScaler(), TruncatedSVD(3)],
    "standard-nomean+pca": lambda: [StandardScaler(with_mean=False), PCA(5)],
    "robust-options": lambda: [RobustScaler(with_centering=False),
                               RobustScaler(with_scaling=False), "passthrough"],
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("pipe", list(PIPES))
def test_classifier_pipelines(pipe, dtype):
    X, y = _data()
    model = _fit(make_pipeline(*PIPES[pipe](), MLPClassifier(
        hidden_layer_sizes=(8,), activation="tanh", max_iter=200, random_state=0)), X, y)
    net = lf.from_sklearn(model, dtype=dtype)
    assert net.input_shape == (6,) and net.dtype == np.dtype(dtype)
    close_forward("sklearn", net.forward(X.astype(dtype)), model.predict_proba(X), dtype,
                  tol=F32_TOL if dtype == "float32" else None)
    same_relevance(net, _by_hand(model, dtype), list(X[:3].astype(dtype)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_regressor_pipeline(dtype):
    X, _ = _data(seed=1)
    target = X[:, 0] * 2 - X[:, 2] / 50
    model = _fit(make_pipeline(StandardScaler(), PCA(4), MLPRegressor(
        hidden_layer_sizes=(7,), max_iter=300, random_state=0)), X, target)
    net = lf.from_sklearn(model, dtype=dtype)
    close_forward("sklearn", net.forward(X.astype(dtype))[:, 0], model.predict(X), dtype,
                  tol=F32_TOL if dtype == "float32" else None)
    same_relevance(net, _by_hand(model, dtype), list(X[:2].astype(dtype)))


def test_scaler_relevance_lands_at_the_raw_feature():
    """Affine passes relevance through: the Pipeline's relevance is the MLP's
    relevance for the scaled probe, feature by feature."""
    X, y = _data(seed=2)
    model = _fit(make_pipeline(StandardScaler(), MinMaxScaler(), MLPClassifier(
        hidden_layer_sizes=(9,), max_iter=200, random_state=0)), X, y)
    net = lf.from_sklearn(model)
    assert [type(l).__name__ for l in net.layers][:2] == ["Affine", "Affine"]
    mlp_net = lf.from_sklearn(model.steps[-1][1])
    scaled = model[:-1].transform(X[:4])
    for rule in ("epsilon", "alpha-beta"):
        for x, xs in zip(X[:4], scaled):
            a, b = lf.explain(net, x, rule=rule), lf.explain(mlp_net, xs, rule=rule)
            assert [bd.rule for bd in a.boundaries[:2]] == ["passthru", "passthru"]
            np.testing.assert_allclose(a.relevance, b.relevance, rtol=1e-9, atol=1e-12)


def test_pca_takes_a_rule_like_any_dense_layer():
    X, y = _data(seed=3)
    model = _fit(make_pipeline(StandardScaler(), PCA(4), MLPClassifier(
        hidden_layer_sizes=(6,), max_iter=200, random_state=0)), X, y)
    net = lf.from_sklearn(model)
    assert net._n_dense == 3                       # PCA + two MLP layers
    e = lf.explain(net, X[0], rule=["epsilon", "gamma", "epsilon"])
    assert [b.rule for b in e.boundaries] == ["passthru", "epsilon", "gamma", "epsilon",
                                              "SKIPPED"]
    with pytest.raises(ValueError, match="3"):
        lf.explain(net, X[0], rule=["epsilon", "epsilon"])


def test_input_shape_is_the_raw_features():
    X, y = _data(n=120, seed=4)
    X = np.hstack([X, X[:, :2] ** 2])              # 8 raw features
    model = _fit(make_pipeline(StandardScaler(), PCA(3), MLPClassifier(
        hidden_layer_sizes=(5,), max_iter=100, random_state=0)), X, y)
    net = lf.from_sklearn(model, input_shape=(2, 4))
    assert net.input_shape == (2, 4)
    close_forward("sklearn", net.forward(X.reshape(-1, 2, 4)), model.predict_proba(X),
                  "float64")
    with pytest.raises(ValueError, match="input_shape"):
        lf.from_sklearn(model, input_shape=(3,))   # PCA's 3 outputs are not the input


def test_refusals_name_the_step():
    X, y = _data(n=80)
    mlp = MLPClassifier(hidden_layer_sizes=(3,), max_iter=20, random_state=0)
    cases = [
        (make_pipeline(PolynomialFeatures(), mlp),
         r"Pipeline step 0 'polynomialfeatures' \(PolynomialFeatures\) is not supported"),
        (make_pipeline(StandardScaler(), MinMaxScaler(clip=True), mlp),
         r"step 1 'minmaxscaler' \(MinMaxScaler\) has clip=True"),
    ]
    for model, match in cases:
        _fit(model, X, y)
        with pytest.raises(ValueError, match=match):
            lf.from_sklearn(model)
    with pytest.raises(ValueError, match="not fitted"):
        lf.from_sklearn(make_pipeline(StandardScaler(), MLPClassifier()))
    with pytest.raises(TypeError, match=r"final step 'pca' .*got PCA"):
        lf.from_sklearn(Pipeline([("scale", StandardScaler()), ("pca", PCA(2))]).fit(X))
