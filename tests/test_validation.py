"""Every bad input is refused before any kernel runs, with a message that
names the argument; harmless inputs (ints, float16) are cast."""

import math

import numpy as np
import pytest

import lrpfast as lf

BACKENDS = ("cython", "numpy")


@pytest.fixture(params=["float32", "float64"])
def net(request):
    return lf.Network((1, 6, 6), [lf.Dense(16, activation="relu"),
                                  lf.Dense(12, activation="relu"),
                                  lf.Dense(2, activation="linear"), lf.SoftMax()],
                      dtype=request.param, seed=0)


@pytest.fixture
def x():
    return np.random.default_rng(0).normal(size=(1, 6, 6))


@pytest.fixture
def X():
    return np.random.default_rng(1).normal(size=(3, 1, 6, 6))


def both(net, x, X, **kw):
    """Callables for explain on one probe and explain_batch on a batch."""
    return [lambda: lf.explain(net, x, **kw), lambda: lf.explain_batch(net, X, **kw)]


# --------------------------------------------------------------------------
# Probes
# --------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(6, 6), (1, 6, 5), (2, 6, 6), (36,), (1, 1, 6, 6, 1)])
def test_wrong_probe_shape(net, backend, shape):
    with pytest.raises(ValueError, match=r"\bx\b") as info:
        lf.explain(net, np.zeros(shape), backend=backend)
    assert str(shape).replace(",)", ")") in str(info.value).replace(",)", ")")
    with pytest.raises(ValueError, match=r"(?i)\bx\b"):
        lf.explain_batch(net, np.zeros((2,) + shape), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_batch(net, backend):
    with pytest.raises(ValueError, match=r"(?i)\bx\b"):
        lf.explain_batch(net, np.zeros((0, 1, 6, 6)), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [
    "abc",
    np.full((1, 6, 6), "a"),
    np.zeros((1, 6, 6), dtype=object),
    [[["a"] * 6] * 6],
    None,
], ids=["str", "str-array", "object-array", "nested-str-list", "None"])
def test_strings_and_objects_are_refused(net, backend, bad):
    with pytest.raises(TypeError, match=r"\bx\b"):
        lf.explain(net, bad, backend=backend)
    with pytest.raises(TypeError, match=r"(?i)\bx\b"):
        lf.explain_batch(net, bad if isinstance(bad, str) or bad is None else
                         np.stack([np.asarray(bad)] * 2), backend=backend)
    with pytest.raises(TypeError, match=r"\bx\b"):
        net.forward(bad)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_probe(net, x, X, backend, value):
    x = x.copy()
    x[0, 3, 2] = value
    X = X.copy()
    X[2, 0, 1, 1] = value
    what = "NaN" if math.isnan(value) else "Inf"
    with pytest.raises(ValueError, match=what) as info:
        lf.explain(net, x, backend=backend)
    assert "x" in str(info.value)
    with pytest.raises(ValueError, match=what):
        lf.explain_batch(net, X, backend=backend)
    with pytest.raises(ValueError, match=what):
        net.forward(x)


def test_probe_that_overflows_the_dtype(net, x):
    """1e300 is finite in float64 but not in float32: never a silent Inf."""
    x = x.copy()
    x[0, 0, 0] = 1e300
    if net.dtype == np.float32:
        with pytest.raises(ValueError, match=r"Inf"):
            lf.explain(net, x)
    else:  # representable: accepted, and the result is finite
        e = lf.explain(net, x)
        assert np.isfinite(e.relevance).all() and np.isfinite(e.logit)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float16_and_int_probes_are_cast(net, backend):
    rng = np.random.default_rng(3)
    x16 = rng.normal(size=(1, 6, 6)).astype(np.float16)
    xi = rng.integers(-3, 4, size=(1, 6, 6))
    for raw in (x16, xi, xi.astype(np.int8), xi.astype(np.uint8) % 3, xi.tolist()):
        ref = np.asarray(raw).astype(net.dtype)
        e = lf.explain(net, raw, backend=backend)
        e_ref = lf.explain(net, ref, backend=backend)
        assert e.relevance.dtype == net.dtype
        assert e.relevance.tobytes() == e_ref.relevance.tobytes()
        b = lf.explain_batch(net, np.stack([np.asarray(raw)] * 2), backend=backend)
        b_ref = lf.explain_batch(net, np.stack([ref] * 2), backend=backend)
        assert b.relevance.dtype == net.dtype
        assert b.relevance.tobytes() == b_ref.relevance.tobytes()
        assert net.forward(raw).tobytes() == net.forward(ref).tobytes()


# --------------------------------------------------------------------------
# Rule parameters
# --------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rule", ["epsilon", "gamma"])
@pytest.mark.parametrize("eps", [0.0, -1e-3, math.inf, -math.inf, math.nan])
def test_bad_eps(net, x, X, backend, rule, eps):
    for call in both(net, x, X, rule=rule, eps=eps, backend=backend):
        with pytest.raises(ValueError, match="eps"):
            call()
    with pytest.raises(ValueError, match="eps"):
        lf.Epsilon(eps=eps)
    with pytest.raises(ValueError, match="eps"):
        lf.Gamma(gamma=0.25, eps=eps)


@pytest.mark.parametrize("gamma", [-1e-9, -0.25, math.inf, math.nan])
def test_bad_gamma(net, x, X, gamma):
    for call in both(net, x, X, rule="gamma", gamma=gamma):
        with pytest.raises(ValueError, match="gamma"):
            call()
    with pytest.raises(ValueError, match="gamma"):
        lf.Gamma(gamma=gamma)


@pytest.mark.parametrize("alpha", [0.999, 0.0, -2.0, math.inf, math.nan])
def test_bad_alpha(net, x, X, alpha):
    for call in both(net, x, X, rule="alpha-beta", alpha=alpha):
        with pytest.raises(ValueError, match="alpha"):
            call()
    with pytest.raises(ValueError, match="alpha"):
        lf.AlphaBeta(alpha=alpha)


@pytest.mark.parametrize("name,value", [("eps", "0.1"), ("gamma", "big"), ("alpha", None),
                                        ("eps", [0.1]), ("alpha", 2j)])
def test_non_numeric_parameters(net, x, name, value):
    rule = {"eps": "epsilon", "gamma": "gamma", "alpha": "alpha-beta"}[name]
    with pytest.raises((TypeError, ValueError), match=name):
        lf.explain(net, x, rule=rule, **{name: value})


def test_edge_parameters_are_accepted(net, x):
    lf.explain(net, x, rule="gamma", gamma=0.0)          # gamma = 0 is plain epsilon
    lf.explain(net, x, rule="alpha-beta", alpha=1.0)     # beta = 0
    lf.explain(net, x, rule="epsilon", eps=1e-300)
    lf.explain(net, x, rule=lf.AlphaBeta(alpha=1))


# --------------------------------------------------------------------------
# forced_class
# --------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [2, -1, 100, -3])
def test_forced_class_out_of_range(net, x, X, backend, bad):
    for call in both(net, x, X, forced_class=bad, backend=backend):
        with pytest.raises(ValueError, match="forced_class"):
            call()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [1.0, 0.5, "1", [1], np.float64(0.0)],
                         ids=["float", "half", "str", "list", "np-float"])
def test_forced_class_not_an_int(net, x, backend, bad):
    with pytest.raises((TypeError, ValueError), match="forced_class"):
        lf.explain(net, x, forced_class=bad, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [
    [0, 1], [0, 1, 1, 0], np.array([[0], [1], [1]]), np.array([0, 1, 2]),
    np.array([0, -1, 1]), np.array([0.0, 1.0, 1.0]), ["a", "b", "c"], [0.5, 1, 1],
], ids=["short", "long", "2d", "too-big", "negative", "float-array", "str-array",
        "mixed"])
def test_forced_class_array_in_explain_batch(net, X, backend, bad):
    with pytest.raises((TypeError, ValueError), match="forced_class"):
        lf.explain_batch(net, X, forced_class=bad, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_forced_class_good_forms(net, X, backend):
    for good in (1, np.int32(1), [1, 1, 1], np.array([1, 1, 1], dtype=np.uint8)):
        assert lf.explain_batch(net, X, forced_class=good,
                                backend=backend).explained_class.tolist() == [1, 1, 1]


# --------------------------------------------------------------------------
# rule, backend, net
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["lrp-z", "Epsilon", "alpha_beta", "", "eps"])
def test_unknown_rule_name_lists_the_valid_ones(net, x, X, name):
    for call in both(net, x, X, rule=name):
        with pytest.raises(ValueError, match="rule") as info:
            call()
        msg = str(info.value)
        for valid in ("epsilon", "gamma", "alpha-beta"):
            assert valid in msg, msg
        assert repr(name) in msg or name in msg


@pytest.mark.parametrize("bad", [42, None, 1.5, {"epsilon": 1}, lf.Dense(2)],
                         ids=["int", "None", "float", "dict", "layer"])
def test_rule_of_wrong_type(net, x, bad):
    with pytest.raises(TypeError, match="rule"):
        lf.explain(net, x, rule=bad)


@pytest.mark.parametrize("rules", [["epsilon", "gamma"], ["epsilon"] * 4, [],
                                   [lf.Epsilon()] * 2])
def test_rule_list_of_wrong_length(net, x, X, rules):
    for call in both(net, x, X, rule=rules):
        with pytest.raises(ValueError, match="rule") as info:
            call()
        assert "3" in str(info.value)   # says how many it needs


def test_rule_list_with_a_bad_entry(net, x):
    with pytest.raises(ValueError, match="rule"):
        lf.explain(net, x, rule=["epsilon", "nope", "gamma"])
    with pytest.raises(TypeError, match="rule"):
        lf.explain(net, x, rule=["epsilon", 3, "gamma"])


@pytest.mark.parametrize("bad", ["torch", "Cython", "", None, 1])
def test_wrong_backend(net, x, X, bad):
    for call in both(net, x, X, backend=bad):
        with pytest.raises((ValueError, TypeError), match="backend") as info:
            call()
        msg = str(info.value)
        assert "cython" in msg and "numpy" in msg


@pytest.mark.parametrize("bad", [None, "net", object()])
def test_net_must_be_a_network(x, bad):
    with pytest.raises(TypeError, match="net"):
        lf.explain(bad, x)
    with pytest.raises(TypeError, match="net"):
        lf.explain_batch(bad, x[None])


def test_batch_index_is_validated(net, X):
    b = lf.explain_batch(net, X)
    with pytest.raises((IndexError, ValueError)):
        b[3]
    with pytest.raises((IndexError, ValueError)):
        b[-4]
    with pytest.raises(TypeError):
        b["0"]


# --------------------------------------------------------------------------
# Parameter assignment
# --------------------------------------------------------------------------

@pytest.mark.parametrize("param,shape", [("weight", (36, 16)), ("bias", (16,))])
def test_bad_parameter_assignment(net, param, shape):
    layer = net.layers[0]
    before = getattr(layer, param).tobytes()
    name = f"Dense.{param}"
    for value in (math.nan, math.inf, -math.inf):
        arr = np.ones(shape)
        arr.flat[3] = value
        with pytest.raises(ValueError, match=name):
            setattr(layer, param, arr)
    for wrong in (np.ones(shape[::-1] if len(shape) == 2 else (15,)), np.ones(shape + (1,)),
                  np.ones(()), np.ones((37, 16) if param == "weight" else (17,))):
        with pytest.raises(ValueError, match=name):
            setattr(layer, param, wrong)
    for bad in ("abc", np.full(shape, "a"), np.zeros(shape, dtype=object)):
        with pytest.raises(TypeError, match=name):
            setattr(layer, param, bad)
    # a refused assignment leaves the parameter untouched
    assert getattr(layer, param).tobytes() == before


def test_parameter_assignment_casts_and_copies(net):
    layer = net.layers[1]
    W = np.arange(16 * 12, dtype=np.int64).reshape(16, 12) % 5
    layer.weight = W
    assert layer.weight.dtype == net.dtype and layer.weight.shape == (16, 12)
    np.testing.assert_array_equal(layer.weight, W)
    W[0, 0] = 99                      # the layer kept its own copy
    assert layer.weight[0, 0] == 0
    layer.bias = np.ones(12, dtype=np.float16)
    assert layer.bias.dtype == net.dtype
    Wf = np.asfortranarray(np.random.default_rng(0).normal(size=(16, 12)))
    layer.weight = Wf
    np.testing.assert_array_equal(layer.weight, Wf.astype(net.dtype))


def test_parameters_are_read_only(net):
    with pytest.raises(ValueError):
        net.layers[0].weight[0, 0] = 1.0
    with pytest.raises(ValueError):
        net.layers[0].bias[0] = 1.0


def test_layernorm_parameter_assignment(dtype="float64"):
    net = lf.Network((4,), [lf.LayerNorm(name="ln")], dtype=dtype)
    with pytest.raises(ValueError, match="ln.weight"):
        net.layers[0].weight = [1.0, math.nan, 1.0, 1.0]
    with pytest.raises(ValueError, match="ln.bias"):
        net.layers[0].bias = np.zeros(5)


# --------------------------------------------------------------------------
# Constructors
# --------------------------------------------------------------------------

@pytest.mark.parametrize("make,name,exc", [
    (lambda: lf.Network((1, 6, 6), [lf.Dense(2)], dtype="float16"), "dtype", ValueError),
    (lambda: lf.Network((1, 6, 6), [lf.Dense(2)], dtype="int32"), "dtype", ValueError),
    (lambda: lf.Network((0,), [lf.Dense(2)]), "input_shape", ValueError),
    (lambda: lf.Network((), [lf.Dense(2)]), "input_shape", ValueError),
    (lambda: lf.Network((2, -3), [lf.Dense(2)]), "input_shape", ValueError),
    (lambda: lf.Network("abc", [lf.Dense(2)]), "input_shape", (TypeError, ValueError)),
    (lambda: lf.Network((3,), []), "layers", ValueError),
    (lambda: lf.Network((3,), [lf.Dense(2), "relu"]), "layers", TypeError),
    (lambda: lf.Dense(0), "units", ValueError),
    (lambda: lf.Dense(2.5), "units", TypeError),
    (lambda: lf.Dense(2, activation="gelu"), "activation", ValueError),
    (lambda: lf.Dropout(1.0), "rate", ValueError),
    (lambda: lf.Dropout(-0.1), "rate", ValueError),
    (lambda: lf.LayerNorm(eps=0.0), "eps", ValueError),
], ids=["dtype16", "dtype-int", "shape0", "shape-empty", "shape-neg", "shape-str", "no-layers",
        "layer-str", "units0", "units-float", "activation", "rate1", "rate-neg", "ln-eps"])
def test_bad_constructor_arguments(make, name, exc):
    with pytest.raises(exc, match=name):
        make()


def test_a_layer_belongs_to_one_network():
    d = lf.Dense(2)
    lf.Network((3,), [d])
    with pytest.raises(ValueError):
        lf.Network((3,), [d])


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_overflowing_relevance_is_refused_not_returned(backend):
    """Finite inputs whose activations overflow float32: a ValueError, never NaN/Inf."""
    import warnings
    net = lf.Network((3,), [lf.Dense(2)], seed=0)
    net.layers[0].weight = np.full((3, 2), 1e30)
    x = np.full(3, 3e38)
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # and no numpy warning on the way
        with pytest.raises(ValueError, match="overflow float32"):
            lf.explain(net, x, backend=backend)
        with pytest.raises(ValueError, match="X: .*overflow"):
            lf.explain_batch(net, np.stack([x, x]), backend=backend)


def test_value_beyond_float32_range_named_without_warning():
    import warnings
    net = lf.Network((3,), [lf.Dense(2)], seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="x contains values outside the float32 range"):
            lf.explain(net, np.array([1e300, 0.0, 0.0]))


@pytest.mark.parametrize("dtype,value", [(np.float32, 3e38), (np.float64, 1e308)])
def test_huge_finite_values_pass_validation_without_warning(dtype, value):
    """Finite values near the dtype's limit are valid input: no error, no warning."""
    import warnings
    from lrpfast._validation import as_float_array
    x = np.full(3, value, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = as_float_array(x, "x", np.dtype(dtype))
    np.testing.assert_array_equal(out, x)


def test_check_class_array_one_validator_for_forced_class_and_target():
    from lrpfast._validation import check_class_array
    np.testing.assert_array_equal(check_class_array(1, "target", 3, 2), [1, 1, 1])
    out = check_class_array(np.array([0, 1, 1], dtype=np.int32), "target", 3, 2)
    assert out.dtype == np.int64 and out.tolist() == [0, 1, 1]
    assert check_class_array(None, "target", 3, 2) is None
    with pytest.raises(ValueError, match=r"target must be None, an int or an array of 3 ints"):
        check_class_array([0.0, 1.0, 1.0], "target", 3, 2)
    with pytest.raises(ValueError, match=r"target values must be in \[0, 1\].*\[0, 5\]"):
        check_class_array([0, 5, 1], "target", 3, 2)
    with pytest.raises(TypeError, match="target"):
        check_class_array(True, "target", 3, 2)
    # a one-output network: the message on the one logit, for target= too
    with pytest.raises(ValueError, match="target must be 0 for a network with a single output"):
        check_class_array([0, 1, 0], "target", 3, 1)
    # a lazy array: dtype and shape only, returned as it is
    lazy = np.array([7, 7, 7])
    assert check_class_array(lazy, "forced_class", 3, 2, check_values=False) is lazy
    with pytest.raises(ValueError, match="forced_class must be None"):
        check_class_array(lazy[:2], "forced_class", 3, 2, check_values=False)


def test_target_and_forced_class_say_the_same(rng=np.random.default_rng(0)):
    net = lf.Network((4,), [lf.Dense(3, "relu"), lf.Dense(1, "sigmoid")], seed=0)
    X = rng.random((3, 4))
    msgs = []
    for call in (lambda: lf.explain_batch(net, X, forced_class=[0, 1, 0]),
                 lambda: lf.evaluate.compare_rules(net, X, ["epsilon"], target=[0, 1, 0])):
        with pytest.raises(ValueError) as info:
            call()
        msgs.append(str(info.value))
    assert msgs[0].replace("forced_class", "NAME") == msgs[1].replace("target", "NAME")
    assert "single output" in msgs[1]
