"""Interop: networks imported from scikit-learn, PyTorch and ONNX.

For each framework: the imported network's forward equals the framework's
own output; its relevance equals an independent NumPy LRP walk (DESIGN §3)
over the *source's* weight arrays and the source's own activations; and
unsupported layers, operators and files are refused.  Every model is built
and trained here on small data made here; the ONNX files are exported from
torch (or built by hand) into ``tmp_path``.  A test whose framework is
absent is skipped.
"""

import copy
import importlib.util
import pickle
import sys
from collections import defaultdict

import numpy as np
import pytest

import lrpfast as lf
from lrpfast import interop
from lrpfast.interop import from_onnx, from_sklearn, from_torch
from _interop_common import BACKENDS, FWD_TOL, RULES

# Largest differences seen, per (framework, what): read by hand after a run.
DIFFS = defaultdict(float)

# Per-dtype tolerances, relative to the largest magnitude compared; the
# forward tolerance, the rules and the backends are the importer tests' own.
REL_TOL = {"float32": 2e-4, "float64": 1e-9}


def _close(framework, what, got, want, tol):
    """Assert ``|got - want| <= tol * max(1, |want|)``; record the difference
    under (framework, what, dtype of ``got``)."""
    dt = np.asarray(got).dtype.name
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    scale = max(1.0, float(np.abs(want).max()))
    diff = float(np.abs(got - want).max())
    DIFFS[framework, what, dt] = max(DIFFS[framework, what, dt], diff)
    assert diff <= tol * scale, f"{framework} {what}: max diff {diff:g}"


# --------------------------------------------------------------------------
# An independent LRP walk (DESIGN §3), float64, on one probe
# --------------------------------------------------------------------------

def _sgn(x):
    return np.where(x >= 0, 1.0, -1.0)


def _dense_rule(a, W, b, R, rule, p, absorb_bias):
    if rule == "gamma":
        W = W + p["gamma"] * np.maximum(W, 0)
        b = b + p["gamma"] * np.maximum(b, 0)
    if rule in ("epsilon", "gamma"):
        d = a @ W + (b if absorb_bias else 0)
        return a * (W @ (R / (d + p["eps"] * _sgn(d))))
    alpha, beta = p["alpha"], p["alpha"] - 1
    c = a[:, None] * W                       # c_ij = a_i w_ij, materialised
    cp, cn = np.maximum(c, 0), np.minimum(c, 0)
    P, N = cp.sum(0), cn.sum(0)
    if absorb_bias:
        P, N = P + np.maximum(b, 0), N + np.minimum(b, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        fp = np.where(P != 0, alpha * R / P, 0)
        fn = np.where(N != 0, beta * R / N, 0)
    return cp @ fp - cn @ fn


def ref_lrp(acts, ops, rule, params, forced_class=None, absorb_bias=False):
    """LRP of one probe from the source's activations and weights.

    ``ops[k]`` is ``("dense", W (n_in, n_out), b)`` or ``(kind,)`` for a layer
    that passes relevance through; ``acts[k]`` is the input of ``ops[k]`` and
    ``acts[-1]`` the output.  The logits are the input of a trailing softmax
    or sigmoid, else the output.  Returns ``(R_input, class, logit)``.
    """
    acts = [np.asarray(a, dtype=np.float64).reshape(-1) for a in acts]
    out = acts[-1]
    cls = int(np.argmax(out)) if forced_class is None else forced_class
    k_logit = len(ops) - 1 if ops[-1][0] in ("softmax", "sigmoid") else len(ops)
    logit = acts[k_logit][cls]
    R = np.zeros_like(out)
    R[cls] = logit
    for k in range(len(ops) - 1, -1, -1):
        if ops[k][0] == "dense":
            _, W, b = ops[k]
            R = _dense_rule(acts[k], np.asarray(W, np.float64),
                            np.asarray(b, np.float64), R, rule, params, absorb_bias)
    return R, cls, logit


def _check_explain(framework, net, x, acts, ops, rule, params, backend,
                   forced_class=None, absorb_bias=False):
    e = lf.explain(net, x, rule=rule, backend=backend, forced_class=forced_class,
                   absorb_bias=absorb_bias, **params)
    R, cls, logit = ref_lrp(acts, ops, rule, params, forced_class, absorb_bias)
    assert e.explained_class == cls
    tol = REL_TOL[net.dtype.name]
    _close(framework, "logit", net.dtype.type(e.logit), logit, tol)
    _close(framework, "relevance", e.relevance.reshape(-1), R, tol)
    return e


# --------------------------------------------------------------------------
# Public API and missing frameworks (no framework needed)
# --------------------------------------------------------------------------

def test_public_api():
    assert lf.from_sklearn is interop.from_sklearn
    assert lf.from_torch is interop.from_torch
    assert lf.from_onnx is interop.from_onnx
    assert lf.from_keras is interop.from_keras
    assert lf.Affine is lf.layers.Affine
    assert {"from_keras", "Affine"} <= set(lf.__all__)


@pytest.mark.parametrize("func, module, hint", [
    (lambda: from_sklearn(object()), "sklearn.neural_network", "pip install scikit-learn"),
    (lambda: from_torch(object()), "torch", "pip install torch==2.13.0"),
    (lambda: from_onnx("model.onnx"), "onnx", "pip install onnx"),
])
def test_missing_framework_says_how_to_install(monkeypatch, func, module, hint):
    monkeypatch.setitem(sys.modules, module, None)   # makes the import fail
    with pytest.raises(ImportError, match=hint.replace(".", r"\.")):
        func()


# --------------------------------------------------------------------------
# scikit-learn
# --------------------------------------------------------------------------

def _sk_data(n=160, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    score = X[:, 0] + 0.8 * X[:, 1] * X[:, 2] - 0.5 * X[:, 3]
    return X, score


_SK_ACT = {
    "identity": lambda z: z,
    "relu": lambda z: np.maximum(z, 0),
    "tanh": np.tanh,
    "logistic": lambda z: 1 / (1 + np.exp(-z)),
}


def _sk_trace(model, x):
    """Activations and ops of one probe, from the model's own coefs_/intercepts_."""
    acts, ops = [np.asarray(x, np.float64)], []
    n = len(model.coefs_)
    for k, (W, b) in enumerate(zip(model.coefs_, model.intercepts_)):
        z = acts[-1] @ W + b
        ops.append(("dense", W, b))
        acts.append(z)
        if k < n - 1:
            ops.append(("act",))
            acts.append(_SK_ACT[model.activation](z))
    if model.out_activation_ == "softmax":
        ops.append(("softmax",))
        e = np.exp(acts[-1] - acts[-1].max())
        acts.append(e / e.sum())
    elif model.out_activation_ == "logistic":
        ops.append(("sigmoid",))
        acts.append(_SK_ACT["logistic"](acts[-1]))
    return acts, ops


@pytest.fixture(scope="module")
def sk():
    return pytest.importorskip("sklearn.neural_network")


def _fit(model, X, y):
    from sklearn.exceptions import ConvergenceWarning
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


@pytest.mark.parametrize("activation", ["relu", "identity", "tanh", "logistic"])
def test_sklearn_multiclass(sk, activation):
    X, score = _sk_data()
    y = np.digitize(score, [-0.7, 0.7])                 # 3 classes
    model = _fit(sk.MLPClassifier(hidden_layer_sizes=(10, 7), activation=activation,
                                  max_iter=150, random_state=0), X, y)
    net = from_sklearn(model)
    assert net.dtype == np.float64 and net.input_shape == (6,)
    assert isinstance(net.layers[-1], lf.SoftMax)
    _close("sklearn", "forward", net.forward(X), model.predict_proba(X), FWD_TOL["float64"])
    for i in (0, 5):
        acts, ops = _sk_trace(model, X[i])
        for rule, params in RULES:
            for backend in BACKENDS:
                _check_explain("sklearn", net, X[i], acts, ops, rule, params, backend)
        _check_explain("sklearn", net, X[i], acts, ops, "epsilon", dict(eps=0.05),
                       "cython", forced_class=2, absorb_bias=True)


def test_sklearn_binary_explains_the_positive_class_logit(sk):
    X, score = _sk_data(seed=1)
    model = _fit(sk.MLPClassifier(hidden_layer_sizes=(8,), max_iter=200, random_state=0),
                 X, np.where(score > 0, "yes", "no"))
    net = from_sklearn(model)
    assert net.output_shape == (1,) and isinstance(net.layers[-1], lf.Sigmoid)
    proba = model.predict_proba(X)
    _close("sklearn", "forward", net.forward(X)[:, 0], proba[:, 1], FWD_TOL["float64"])
    for i in range(4):
        acts, ops = _sk_trace(model, X[i])
        for rule, params in RULES:
            e = _check_explain("sklearn", net, X[i], acts, ops, rule, params, "cython")
            # Class 0 is the logit of classes_[1] ("yes"), whichever way it leans.
            assert e.explained_class == 0
            p = proba[i, 1]
            _close("sklearn", "logit", e.logit, np.log(p / (1 - p)), 1e-8)


def test_sklearn_multilabel(sk):
    X, score = _sk_data(seed=5)
    Y = np.column_stack([score > 0, X[:, 4] > 0, X[:, 5] > X[:, 0]]).astype(int)
    model = _fit(sk.MLPClassifier(hidden_layer_sizes=(8,), max_iter=150, random_state=0),
                 X, Y)
    net = from_sklearn(model)
    assert net.output_shape == (3,) and isinstance(net.layers[-1], lf.Sigmoid)
    _close("sklearn", "forward", net.forward(X), model.predict_proba(X), FWD_TOL["float64"])
    acts, ops = _sk_trace(model, X[0])
    for c in (None, 1):
        _check_explain("sklearn", net, X[0], acts, ops, "gamma", dict(gamma=0.25, eps=0.05),
                       "cython", forced_class=c)


def test_sklearn_regressors(sk):
    X, score = _sk_data(seed=2)
    one = _fit(sk.MLPRegressor(hidden_layer_sizes=(9,), activation="tanh",
                               max_iter=200, random_state=0), X, score)
    net = from_sklearn(one)
    assert net.output_shape == (1,) and len(net.layers) == 2
    _close("sklearn", "forward", net.forward(X)[:, 0], one.predict(X), FWD_TOL["float64"])
    acts, ops = _sk_trace(one, X[3])
    for rule, params in RULES:
        _check_explain("sklearn", net, X[3], acts, ops, rule, params, "cython")

    Y = np.column_stack([score, X[:, 4] - X[:, 5], np.abs(X[:, 0])])
    multi = _fit(sk.MLPRegressor(hidden_layer_sizes=(12, 6), activation="relu",
                                 max_iter=200, random_state=0), X, Y)
    net = from_sklearn(multi)
    _close("sklearn", "forward", net.forward(X), multi.predict(X), FWD_TOL["float64"])
    acts, ops = _sk_trace(multi, X[7])
    for c in (None, 0, 1, 2):       # forced_class picks the output to explain
        for backend in BACKENDS:
            e = _check_explain("sklearn", net, X[7], acts, ops, "epsilon",
                               dict(eps=0.05), backend, forced_class=c)
            assert e.explained_class == (np.argmax(multi.predict(X[7:8])) if c is None else c)


def test_sklearn_dtype(sk):
    X, score = _sk_data(seed=3)
    model = _fit(sk.MLPClassifier(hidden_layer_sizes=(6,), max_iter=100, random_state=0),
                 X, score > 0)
    assert from_sklearn(model, dtype="float32").dtype == np.float32
    net32 = _fit(sk.MLPClassifier(hidden_layer_sizes=(6,), max_iter=100, random_state=0),
                 X.astype(np.float32), score > 0)
    net = from_sklearn(net32)
    assert net.dtype == net32.coefs_[0].dtype
    X32 = X.astype(net.dtype)
    _close("sklearn", "forward", net.forward(X32)[:, 0], net32.predict_proba(X32)[:, 1],
           FWD_TOL[net.dtype.name])


def test_sklearn_image_input_shape(sk):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(80, 12))
    model = _fit(sk.MLPClassifier(hidden_layer_sizes=(5,), max_iter=50, random_state=0),
                 X, (X[:, 0] > 0).astype(int) + (X[:, 1] > 0))
    net = from_sklearn(model, input_shape=(3, 2, 2))
    assert net.input_shape == (3, 2, 2)
    _close("sklearn", "forward", net.forward(X.reshape(-1, 3, 2, 2)),
           model.predict_proba(X), FWD_TOL["float64"])
    e = lf.explain(net, X[0].reshape(3, 2, 2))
    assert e.relevance.shape == (3, 2, 2)
    with pytest.raises(ValueError, match="input_shape"):
        from_sklearn(model, input_shape=(2, 2, 2))


def test_sklearn_refusals(sk):
    from sklearn.linear_model import LogisticRegression
    X, score = _sk_data(n=40)
    with pytest.raises(TypeError, match="MLPClassifier or MLPRegressor"):
        from_sklearn(LogisticRegression().fit(X, score > 0))
    with pytest.raises(TypeError, match="str"):
        from_sklearn("model.pkl")
    with pytest.raises(ValueError, match="not fitted"):
        from_sklearn(sk.MLPClassifier())
    if "loss" in sk.MLPRegressor().get_params():     # scikit-learn >= 1.7
        poisson = _fit(sk.MLPRegressor(hidden_layer_sizes=(3,), loss="poisson",
                                       max_iter=20, random_state=0), X, np.exp(score / 4))
        with pytest.raises(ValueError, match="'exp'"):    # exp output: no logit
            from_sklearn(poisson)
    model = _fit(sk.MLPRegressor(hidden_layer_sizes=(3,), max_iter=20, random_state=0),
                 X, score)
    odd = copy.deepcopy(model)
    odd.activation = "softplus"
    with pytest.raises(ValueError, match="'softplus'"):
        from_sklearn(odd)
    with pytest.raises(ValueError, match="dtype"):
        from_sklearn(model, dtype="float16")


# --------------------------------------------------------------------------
# PyTorch
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


def _torch_train(torch, module, X, y, steps=60, loss="ce"):
    """A few Adam steps, so the weights are trained rather than initial."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(module.parameters(), lr=0.02)
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    module.train()
    for _ in range(steps):
        opt.zero_grad()
        out = module(X)
        if loss == "ce":   # module ends in Softmax: NLL of its probabilities
            err = -torch.log(out[torch.arange(len(y)), y] + 1e-9).mean()
        else:              # module ends in Sigmoid: binary cross-entropy
            err = torch.nn.functional.binary_cross_entropy(out[:, 0], y)
        err.backward()
        opt.step()
    return module.eval()


def _torch_leaves(torch, module):
    """Leaves in the order Sequential.forward calls them (repeats included)."""
    out = []
    for m in module:
        out += _torch_leaves(torch, m) if isinstance(m, torch.nn.Sequential) else [m]
    return out


def _torch_trace(torch, module, x):
    """Activations (float64, module's own arithmetic) and ops of one probe."""
    m64 = copy.deepcopy(module).double().eval()
    leaves = _torch_leaves(torch, m64)
    acts, ops = [torch.as_tensor(np.asarray(x, np.float64))[None]], []
    with torch.no_grad():
        for k, m in enumerate(leaves):
            acts.append(m(acts[-1]))
            if isinstance(m, torch.nn.Linear):
                b = np.zeros(m.out_features) if m.bias is None else m.bias.numpy()
                ops.append(("dense", m.weight.numpy().T, b))
            elif isinstance(m, torch.nn.Softmax):
                ops.append(("softmax",))
            elif isinstance(m, torch.nn.Sigmoid) and k == len(leaves) - 1:
                ops.append(("sigmoid",))
            else:
                ops.append((type(m).__name__,))
    return [a.numpy() for a in acts], ops


def _blob_images(n=96, seed=0):
    """(n, 1, 4, 4) images; class = which quadrant holds a bright blob."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 0.3, size=(n, 1, 4, 4))
    y = rng.integers(0, 3, n)
    for i, c in enumerate(y):
        r, col = [(0, 0), (0, 2), (2, 1)][c]
        X[i, 0, r:r + 2, col:col + 2] += 1.0
    return X.astype(np.float32), y


def _torch_image_model(torch):
    nn = torch.nn
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(),
        nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Dropout(0.2)),
        nn.Sequential(nn.Sequential(nn.Linear(12, 10), nn.Tanh()), nn.LayerNorm(10)),
        nn.Identity(),
        nn.Linear(10, 8), nn.Sigmoid(),
        nn.Linear(8, 3), nn.Softmax(dim=-1))


def test_torch_nested_image_model(torch):
    X, y = _blob_images()
    module = _torch_train(torch, _torch_image_model(torch), X, y)
    state = {k: v.clone() for k, v in module.state_dict().items()}
    net = from_torch(module, input_shape=(1, 4, 4))
    assert net.dtype == np.float32 and net.input_shape == (1, 4, 4)
    assert [type(l).__name__ for l in net.layers] == [
        "Flatten", "Dense", "ReLU", "Dropout", "Dense", "Tanh", "LayerNorm",
        "Identity", "Dense", "Sigmoid", "Dense", "SoftMax"]
    with torch.no_grad():
        want = module(torch.as_tensor(X)).numpy()
    _close("torch", "forward", net.forward(X), want, FWD_TOL["float32"])
    # The source is untouched.
    assert not module.training
    assert all(torch.equal(v, module.state_dict()[k]) for k, v in state.items())

    net64 = from_torch(module, input_shape=(1, 4, 4), dtype="float64")
    with torch.no_grad():
        want64 = copy.deepcopy(module).double()(torch.as_tensor(X, dtype=torch.float64))
    _close("torch", "forward", net64.forward(X.astype(np.float64)), want64.numpy(),
           FWD_TOL["float64"])
    for i in (0, 1, 2):
        acts, ops = _torch_trace(torch, module, X[i])
        for rule, params in RULES:
            for backend in BACKENDS:
                _check_explain("torch", net64, X[i], acts, ops, rule, params, backend)
                _check_explain("torch", net, X[i], acts, ops, rule, params, backend)
        _check_explain("torch", net64, X[i], acts, ops, "alpha-beta", dict(alpha=1.5),
                       "cython", forced_class=1, absorb_bias=True)


def test_torch_flat_model_with_image_probes(torch):
    """Without a Flatten the module takes x.reshape(B, -1); (C, H, W) still works."""
    nn = torch.nn
    X, y = _blob_images(seed=1)
    torch.manual_seed(1)
    module = _torch_train(torch, nn.Sequential(nn.Linear(16, 6), nn.ReLU(),
                                               nn.Linear(6, 1), nn.Sigmoid()),
                          X.reshape(len(X), -1), (y == 0).astype(np.float32), loss="bce")
    assert from_torch(module).input_shape == (16,)
    net = from_torch(module, input_shape=(1, 4, 4), dtype="float64")
    with torch.no_grad():
        want = module.double()(torch.as_tensor(X.reshape(len(X), -1), dtype=torch.float64))
    _close("torch", "forward", net.forward(X), want.numpy(), FWD_TOL["float64"])
    for i in range(3):
        acts, ops = _torch_trace(torch, module, X[i].reshape(-1))
        for rule, params in RULES:
            e = _check_explain("torch", net, X[i], acts, ops, rule, params, "cython")
            assert e.relevance.shape == (1, 4, 4) and e.explained_class == 0
    assert from_torch(module).dtype == np.float64     # a float64 module stays float64


def test_torch_layer_variants(torch):
    """LayerNorm without affine/bias, Linear without bias, a no-op Flatten, a
    module used twice, a float64 module."""
    nn = torch.nn
    torch.manual_seed(2)
    shared = nn.Tanh()
    module = nn.Sequential(nn.Linear(5, 4, bias=False), shared,
                           nn.LayerNorm(4, elementwise_affine=False), nn.Flatten(),
                           nn.Linear(4, 4), shared, nn.LayerNorm(4, bias=False),
                           nn.Softmax(dim=1)).eval().double()
    with torch.no_grad():
        module[6].weight.mul_(1.5)
    x = np.random.default_rng(0).normal(size=(7, 5))
    net = from_torch(module)
    assert net.dtype == np.float64 and len(net.layers) == 8
    with torch.no_grad():
        _close("torch", "forward", net.forward(x), module(torch.as_tensor(x)).numpy(),
               FWD_TOL["float64"])
    acts, ops = _torch_trace(torch, module, x[0])
    for backend in BACKENDS:
        _check_explain("torch", net, x[0], acts, ops, "epsilon", dict(eps=0.05), backend)


@pytest.mark.parametrize("make, match", [
    (lambda nn: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()), "Conv2d at index 0"),
    (lambda nn: nn.Sequential(nn.Linear(4, 3), nn.Sequential(nn.ReLU(), nn.LeakyReLU())),
     "LeakyReLU at index 1.1"),
    (lambda nn: nn.Sequential(nn.Linear(4, 3), nn.LogSoftmax(dim=1)),
     "LogSoftmax at index 1"),
    (lambda nn: nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=0)), "Softmax at index 1"),
    (lambda nn: nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(2, 2)),
     "Linear at index 2 takes 2 features"),
    (lambda nn: nn.Sequential(nn.Linear(6, 6), nn.Unflatten(1, (2, 3)), nn.LayerNorm(3)),
     "Unflatten at index 1"),
])
def test_torch_refuses_unsupported_modules(torch, make, match):
    with pytest.raises(ValueError, match=match):
        from_torch(make(torch.nn))


def test_torch_refusals(torch):
    nn = torch.nn
    with pytest.raises(TypeError, match="nn.Module"):
        from_torch({"0.weight": torch.zeros(2, 3)})

    class Custom(nn.Sequential):      # traced by fx: the "* 2" is refused
        def forward(self, x):
            return super().forward(x) * 2

    with pytest.raises(ValueError, match=r"node 'mul' \(call_function mul\)"):
        from_torch(Custom(nn.Linear(3, 2)))
    with pytest.raises(ValueError, match="overrides forward"):
        from_torch(nn.Sequential(nn.ReLU(), Custom(nn.Linear(3, 2))))
    with pytest.raises(ValueError, match="empty"):
        from_torch(nn.Sequential())
    with pytest.raises(ValueError, match="input_shape is needed"):
        from_torch(nn.Sequential(nn.ReLU()))
    image = nn.Sequential(nn.Flatten(start_dim=2), nn.Linear(16, 2))
    with pytest.raises(ValueError, match="Flatten at index 0"):
        from_torch(image, input_shape=(1, 4, 4))
    partial = nn.Sequential(nn.LayerNorm(4), nn.Flatten(), nn.Linear(16, 2))
    with pytest.raises(ValueError, match="LayerNorm at index 0"):
        from_torch(partial, input_shape=(1, 4, 4))
    with pytest.raises(ValueError, match="input_shape"):
        from_torch(nn.Sequential(nn.Linear(16, 2)), input_shape=(2, 4, 4))


# --------------------------------------------------------------------------
# ONNX
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def onnx():
    return pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def ort():
    return pytest.importorskip("onnxruntime")


def _ort_run(ort, path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _export(torch, module, x, path):
    """torch.onnx.export; the TorchScript exporter (fast, needs no onnxscript)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.as_tensor(x),), str(path), dynamo=False,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})


def test_onnx_exported_from_torch(torch, onnx, ort, tmp_path):
    X, y = _blob_images(seed=2)
    module = _torch_train(torch, _torch_image_model(torch), X, y)
    path = tmp_path / "model.onnx"
    _export(torch, module, X[:2], path)
    net = from_onnx(path)
    assert net.dtype == np.float32 and net.input_shape == (1, 4, 4)
    _close("onnx", "forward", net.forward(X), _ort_run(ort, path, X), FWD_TOL["float32"])
    # A loaded ModelProto works as well as a path, and float64 on request.
    net64 = from_onnx(onnx.load(str(path)), dtype="float64")
    for i in (0, 3):
        acts, ops = _torch_trace(torch, module, X[i])    # the source's own weights
        for rule, params in RULES:
            for backend in BACKENDS:
                _check_explain("onnx", net64, X[i], acts, ops, rule, params, backend)
                _check_explain("onnx", net, X[i], acts, ops, rule, params, backend)


@pytest.mark.skipif(importlib.util.find_spec("onnxscript") is None,
                    reason="the dynamo ONNX exporter needs onnxscript")
def test_onnx_dynamo_export(torch, onnx, ort, tmp_path):
    import warnings
    X, y = _blob_images(seed=3)
    module = _torch_train(torch, _torch_image_model(torch), X, y, steps=10)
    path = tmp_path / "dynamo.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.as_tensor(X[:2]),), str(path), dynamo=True,
                          input_names=["x"],
                          dynamic_shapes=({0: torch.export.Dim("batch")},))
    net = from_onnx(path)
    _close("onnx", "forward", net.forward(X), _ort_run(ort, path, X), FWD_TOL["float32"])


def _hand_graph(onnx, dtype, rng):
    """x (B, 1, 4, 4) -> Reshape -> MatMul+Add -> Relu -> Identity -> Dropout
    -> Gemm(transB=0, alpha, beta) -> Tanh -> Reshape(B,1,2,3) -> Flatten
    -> Gemm(transB=1, 2-D bias) -> Sigmoid -> MatMul (no bias) -> Add(bias first)
    -> Softmax.  Returns the model and the ops of the independent walk."""
    from onnx import TensorProto, helper, numpy_helper
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    W1, b1 = rng.normal(0, 0.5, (16, 8)), rng.normal(0, 0.2, 8)
    B2, C2 = rng.normal(0, 0.5, (8, 6)), rng.normal(0, 0.2, 6)
    B3, C3 = rng.normal(0, 0.5, (5, 6)), rng.normal(0, 0.2, (1, 5))    # (n_out, n_in)
    W4, b4 = rng.normal(0, 0.8, (5, 3)), rng.normal(0, 0.2, 3)
    alpha, beta = 0.7, 1.5
    # ONNX stores float attributes as float32: the source's alpha is float32(0.7).
    alpha32, beta32 = float(np.float32(alpha)), float(np.float32(beta))
    arrays = dict(W1=W1, b1=b1, B2=B2, C2=C2, B3=B3, C3=C3, W4=W4, b4=b4)
    inits = [numpy_helper.from_array(v.astype(dtype), k) for k, v in arrays.items()]
    inits.append(numpy_helper.from_array(np.array([0, -1], np.int64), "flat"))
    inits.append(numpy_helper.from_array(np.array([-1, 1, 2, 3], np.int64), "img"))
    N = helper.make_node
    nodes = [
        N("Reshape", ["x", "flat"], ["r"], name="reshape_in"),
        N("MatMul", ["r", "W1"], ["m1"], name="matmul1"),
        N("Add", ["m1", "b1"], ["z1"], name="add1"),
        N("Relu", ["z1"], ["a1"], name="relu1"),
        N("Identity", ["a1"], ["i1"], name="identity"),
        N("Dropout", ["i1"], ["d1"], name="dropout"),
        N("Gemm", ["d1", "B2", "C2"], ["z2"], name="gemm_t0", alpha=alpha, beta=beta),
        N("Tanh", ["z2"], ["a2"], name="tanh"),
        N("Reshape", ["a2", "img"], ["a2img"], name="reshape_img"),
        N("Flatten", ["a2img"], ["a2flat"], name="flatten", axis=1),
        N("Gemm", ["a2flat", "B3", "C3"], ["z3"], name="gemm_t1", transB=1),
        N("Sigmoid", ["z3"], ["a3"], name="sigmoid"),
        N("MatMul", ["a3", "W4"], ["m4"], name="matmul4"),
        N("Add", ["b4", "m4"], ["z4"], name="add4"),
        N("Softmax", ["z4"], ["y"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "hand", [helper.make_tensor_value_info("x", elem, ["batch", 1, 4, 4])],
        [helper.make_tensor_value_info("y", elem, ["batch", 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    ops = [("dense", W1, b1), ("Relu",), ("dense", alpha32 * B2, beta32 * C2), ("Tanh",),
           ("dense", B3.T, C3[0]), ("Sigmoid",), ("dense", W4, b4), ("softmax",)]
    return model, ops


def _numpy_trace(ops, x):
    f = {"Relu": lambda z: np.maximum(z, 0), "Tanh": np.tanh,
         "Sigmoid": lambda z: 1 / (1 + np.exp(-z)),
         "softmax": lambda z: np.exp(z - z.max()) / np.exp(z - z.max()).sum()}
    acts = [np.asarray(x, np.float64).reshape(-1)]
    for op in ops:
        acts.append(acts[-1] @ op[1] + op[2] if op[0] == "dense" else f[op[0]](acts[-1]))
    return acts


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_onnx_hand_built_graph(onnx, ort, tmp_path, dtype):
    rng = np.random.default_rng(5)
    model, ops = _hand_graph(onnx, dtype, rng)
    path = tmp_path / "hand.onnx"
    onnx.save(model, str(path))
    net = from_onnx(path)
    name = np.dtype(dtype).name
    assert net.dtype == dtype and net.input_shape == (1, 4, 4)
    assert [type(l).__name__ for l in net.layers] == [
        "Flatten", "Dense", "ReLU", "Identity", "Dropout", "Dense", "Tanh", "Flatten",
        "Dense", "Sigmoid", "Dense", "SoftMax"]
    X = rng.normal(size=(20, 1, 4, 4)).astype(dtype)
    _close("onnx", "forward", net.forward(X), _ort_run(ort, path, X), FWD_TOL[name])
    for i in range(3):
        acts = _numpy_trace(ops, X[i])
        for rule, params in RULES:
            for backend in BACKENDS:
                _check_explain("onnx", net, X[i], acts, ops, rule, params, backend)
    assert from_onnx(path, dtype="float32").dtype == np.float32


def _tiny_graph(onnx, nodes, extra_inits=(), x_shape=("batch", 4),
                y_shape=("batch", 3), opset=13):
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(4, 3)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.normal(size=3).astype(np.float32), "b")]
    inits += list(extra_inits)
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(y_shape))], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def test_onnx_refuses_unsupported_operators(onnx):
    from onnx import helper, numpy_helper
    N = helper.make_node
    cases = [
        ([N("Gemm", ["x", "W", "b"], ["g"], name="fc"),
          N("LogSoftmax", ["g"], ["y"], name="logsm")], (), "'LogSoftmax'.*'logsm'"),
        ([N("Conv", ["x", "K"], ["y"], name="conv0")],
         [numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "K")],
         "'Conv'.*'conv0'"),
        ([N("Gemm", ["x", "W", "b"], ["y"], name="ta", transA=1)], (), "transA"),
        ([N("Relu", ["x"], ["r"], name="r"), N("Add", ["x", "r"], ["s"], name="skip"),
          N("MatMul", ["s", "W"], ["y"], name="mm")], (), "chain"),
        ([N("MatMul", ["x", "W"], ["m"], name="mm"), N("Relu", ["m"], ["r"], name="r"),
          N("Add", ["r", "b"], ["y"], name="add_after_relu")], (), "'add_after_relu'.*bias"),
        ([N("MatMul", ["x", "W"], ["m"], name="mm"),
          N("Reshape", ["m", "s"], ["y"], name="drop_batch")],
         [numpy_helper.from_array(np.array([-1], np.int64), "s")], "batch dimension"),
        ([N("MatMul", ["x", "W"], ["m"], name="mm"),
          N("Softmax", ["m"], ["y"], name="sm", axis=0)], (), "axis=0"),
    ]
    for nodes, inits, match in cases:
        with pytest.raises(ValueError, match=match):
            from_onnx(_tiny_graph(onnx, nodes, inits))


def test_onnx_refuses_bad_files(onnx, tmp_path):
    bad = {
        "empty.onnx": b"",
        "text.onnx": b"this is not a model\n",
        "random.onnx": np.random.default_rng(0).integers(0, 256, 256,
                                                         dtype=np.uint8).tobytes(),
        "pickle.onnx": pickle.dumps({"weights": [1.0, 2.0]}),
    }
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    np.savez(tmp_path / "model.npz", w=np.ones(3))
    for name in list(bad) + ["model.npz"]:
        with pytest.raises(ValueError, match="not a"):
            from_onnx(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        from_onnx(tmp_path / "missing.onnx")
    with pytest.raises(TypeError, match="path_or_model"):
        from_onnx(42)
    # A symbolic probe shape needs input_shape.
    model = _tiny_graph(onnx, [onnx.helper.make_node("MatMul", ["x", "W"], ["y"])],
                        x_shape=("batch", "n"))
    with pytest.raises(ValueError, match="pass input_shape"):
        from_onnx(model)
    assert from_onnx(model, input_shape=(2, 1, 2)).input_shape == (2, 1, 2)
