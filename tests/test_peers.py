"""Agreement with the established LRP libraries (DESIGN §3, "Peers").

Same weights, float64, random networks.  Each test skips cleanly when its
peer (or torch) cannot be imported; zennit in particular imports torchvision,
which does not import beside every torch build.
"""

import numpy as np
import pytest

import lrpfast as lf

torch = pytest.importorskip("torch")

SIZES = [(7, 9, 6, 3), (12, 5, 4)]


def _pair(sizes, seed):
    """A lrpfast float64 net with non-zero biases and the same torch model."""
    rng = np.random.default_rng(seed)
    layers = [lf.Dense(m, "relu") for m in sizes[1:-1]] + [lf.Dense(sizes[-1])]
    net = lf.Network((sizes[0],), layers, dtype="float64", seed=seed)
    mods = []
    for layer in net.layers:
        layer.bias = rng.normal(0, 0.3, layer.bias.shape)
        lin = torch.nn.Linear(layer.n_in, layer.n_out).double()
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(layer.weight.T.copy()))
            lin.bias.copy_(torch.from_numpy(layer.bias.copy()))
        mods.append(lin)
        if layer.activation == "relu":
            mods.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*mods).eval()
    return net, model


def _inputs(n, seed, nonneg=False):
    x = np.random.default_rng(seed + 100).normal(size=(n,))
    return np.abs(x) if nonneg else x


def _close(ours, theirs):
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


# -- captum ---------------------------------------------------------------

def _captum(model, x, rule_factory, target):
    pytest.importorskip("captum")
    from captum.attr import LRP
    for mod in model:
        if isinstance(mod, torch.nn.Linear):
            mod.rule = rule_factory()
    xt = torch.from_numpy(x[None]).requires_grad_(True)
    return LRP(model).attribute(xt, target=target).detach().numpy()[0]


@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("seed", range(3))
def test_captum_epsilon_equals_absorb_bias(sizes, seed):
    pytest.importorskip("captum")
    from captum.attr._utils.lrp_rules import EpsilonRule
    net, model = _pair(sizes, seed)
    x = _inputs(sizes[0], seed)
    e = lf.explain(net, x, rule="epsilon", eps=1e-2, absorb_bias=True)
    theirs = _captum(model, x, lambda: EpsilonRule(epsilon=1e-2), e.explained_class)
    _close(e.relevance, theirs)


@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("seed", range(3))
def test_captum_gamma_equals_default_gamma(sizes, seed):
    pytest.importorskip("captum")
    from captum.attr._utils.lrp_rules import GammaRule
    net, model = _pair(sizes, seed)
    x = _inputs(sizes[0], seed)
    e = lf.explain(net, x, rule=lf.Gamma(gamma=0.25, eps=1e-9))
    theirs = _captum(model, x, lambda: GammaRule(gamma=0.25, set_bias_to_zero=True),
                     e.explained_class)
    _close(e.relevance, theirs)


# -- zennit ---------------------------------------------------------------

def _zennit_composites():
    """zennit's ``(Gradient, composites module)``; skips where zennit cannot import."""
    try:
        from zennit import composites
        from zennit.attribution import Gradient
    except Exception as exc:  # torchvision import failures are not ImportErrors only
        pytest.skip(f"zennit cannot be imported here: {exc}")
    return Gradient, composites


def _zennit_run(model, composite, x, target):
    """zennit's input relevance for probe ``x``, seeded with the target's logit."""
    Gradient, _ = _zennit_composites()
    xt = torch.from_numpy(x[None]).requires_grad_(True)
    with Gradient(model=model, composite=composite) as attributor:
        out = model(xt)
        seed_grad = torch.zeros_like(out)
        seed_grad[0, target] = 1.0
        _, rel = attributor(xt, seed_grad * out)
    return rel.detach().numpy()[0]


def _zennit(model, x, rule_for_linear, target):
    """zennit with one rule for every Linear module."""
    _, composites = _zennit_composites()
    composite = composites.LayerMapComposite(layer_map=[(torch.nn.Linear, rule_for_linear)])
    return _zennit_run(model, composite, x, target)


def _zennit_rules():
    try:
        from zennit import rules
    except Exception as exc:
        pytest.skip(f"zennit cannot be imported here: {exc}")
    return rules


@pytest.mark.parametrize("absorb", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_zennit_epsilon(absorb, seed):
    rules = _zennit_rules()
    net, model = _pair(SIZES[0], seed)
    x = _inputs(SIZES[0][0], seed)
    e = lf.explain(net, x, rule="epsilon", eps=1e-2, absorb_bias=absorb)
    rule = rules.Epsilon(1e-2) if absorb else rules.Epsilon(1e-2, zero_params="bias")
    _close(e.relevance, _zennit(model, x, rule, e.explained_class))


@pytest.mark.parametrize("absorb", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_zennit_alpha_beta(absorb, seed):
    rules = _zennit_rules()
    net, model = _pair(SIZES[0], seed)
    x = _inputs(SIZES[0][0], seed)
    e = lf.explain(net, x, rule="alpha-beta", alpha=2.0, absorb_bias=absorb)
    # zennit adds a stabiliser (default 1e-6) to P and N; make it negligible
    kw = dict(stabilizer=1e-30) if absorb else dict(stabilizer=1e-30, zero_params="bias")
    rule = rules.AlphaBeta(2.0, 1.0, **kw)
    _close(e.relevance, _zennit(model, x, rule, e.explained_class))


# -- zennit: the rules of DESIGN §3b ---------------------------------------

def _zennit_layers(model, x, rules_per_linear, target):
    """zennit with one rule per Linear module, input side first (NameMapComposite)."""
    _, composites = _zennit_composites()
    names = [name for name, mod in model.named_children() if isinstance(mod, torch.nn.Linear)]
    assert len(names) == len(rules_per_linear)
    composite = composites.NameMapComposite(name_map=[((n,), r) for n, r in zip(names, rules_per_linear)])
    return _zennit_run(model, composite, x, target)


def _bounds(n, seed):
    """Per-feature z-box bounds around signed probes."""
    rng = np.random.default_rng(seed + 200)
    return -2.5 - rng.uniform(0, 1, n), 2.5 + rng.uniform(0, 1, n)


def _zennit_case(rule_name, absorb, zr, n, low, high):
    """(lrpfast rule for every layer, zennit rule factory) for one §3b equivalence."""
    zb = {} if absorb else dict(zero_params="bias")
    if rule_name == "z-plus":
        return lf.ZPlus(), lambda: zr.ZPlus(stabilizer=1e-30, **zb)
    if rule_name == "w-square":
        return lf.WSquare(eps=1e-6), lambda: zr.WSquare(stabilizer=1e-6, **zb)
    if rule_name == "flat":
        return lf.Flat(), lambda: zr.Flat(stabilizer=1e-30)
    if rule_name == "gamma-generalized":
        return (lf.GeneralizedGamma(gamma=0.25, eps=1e-2),
                lambda: zr.Gamma(gamma=0.25, stabilizer=1e-2, **zb))
    if rule_name == "alpha-beta-eps":
        # zennit's own default stabiliser, 1e-6
        return lf.AlphaBeta(alpha=2.0, eps=1e-6), lambda: zr.AlphaBeta(2.0, 1.0, **zb)
    raise KeyError(rule_name)


NEW_RULES = ["z-plus", "w-square", "flat", "gamma-generalized", "alpha-beta-eps"]
# Rules whose relevance does not vanish at an input a_i = 0.  zennit sends the
# relevance through the ReLU's gradient (zero for an inactive neuron), lrpfast
# passes it through activations unchanged (DESIGN §3, pass-through), so above
# the first layer the two differ at inactive neurons: they are compared on the
# first Dense layer, where they are meant to be used, with epsilon above.
FIRST_ONLY = ("w-square", "flat")


@pytest.mark.parametrize("target", ["argmax", "most-negative"])
@pytest.mark.parametrize("absorb", [False, True])
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("rule_name", NEW_RULES)
def test_zennit_new_rules(rule_name, seed, absorb, target):
    zr = _zennit_rules()
    sizes = SIZES[0]
    net, model = _pair(sizes, seed)
    x = _inputs(sizes[0], seed)                  # signed inputs
    ours_rule, theirs = _zennit_case(rule_name, absorb, zr, sizes[0], None, None)
    out = net.forward(x)
    cls = int(np.argmax(out)) if target == "argmax" else int(np.argmin(out))
    nd = len(net.dense_layers)
    ours, rules = [ours_rule] * nd, [theirs() for _ in range(nd)]
    if rule_name in FIRST_ONLY:
        ours = [ours_rule] + [lf.Epsilon(1e-2)] * (nd - 1)
        rules = [theirs()] + [zr.Epsilon(1e-2) if absorb else
                              zr.Epsilon(1e-2, zero_params="bias") for _ in range(nd - 1)]
    e = lf.explain(net, x, rule=ours, absorb_bias=absorb, forced_class=cls)
    if target == "most-negative":
        assert e.logit < 0
    _close(e.relevance, _zennit_layers(model, x, rules, cls))


@pytest.mark.parametrize("absorb", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_zennit_z_box_with_per_feature_bounds(seed, absorb):
    zr = _zennit_rules()
    sizes = SIZES[0]
    net, model = _pair(sizes, seed)
    x = _inputs(sizes[0], seed)
    low, high = _bounds(sizes[0], seed)
    assert (low < x).all() and (x < high).all()
    e = lf.explain(net, x, rule=[lf.ZBox(low, high), "epsilon", "epsilon"], absorb_bias=absorb)
    eps_z = (lambda: zr.Epsilon(1e-2)) if absorb else (lambda: zr.Epsilon(1e-2, zero_params="bias"))
    # zennit expands the bounds over the batch: give them one leading axis
    rules = [zr.ZBox(torch.from_numpy(low[None]), torch.from_numpy(high[None])), eps_z(),
             eps_z()]
    _close(e.relevance, _zennit_layers(model, x, rules, e.explained_class))


@pytest.mark.parametrize("name", ["epsilon-plus", "epsilon-plus-flat", "epsilon-gamma-box",
                                  "epsilon-alpha2-beta1", "epsilon-alpha2-beta1-flat",
                                  "epsilon-w-square"])
@pytest.mark.parametrize("seed", range(2))
def test_zennit_composites_rule_by_rule(name, seed):
    """lrpfast's composites on Dense layers equal zennit with the same rule per Linear.

    (zennit's own composites put z-plus, gamma and z-box only on convolutions.)
    """
    zr = _zennit_rules()
    sizes = SIZES[0]
    net, model = _pair(sizes, seed)
    x = _inputs(sizes[0], seed)
    low, high = _bounds(sizes[0], seed)
    kw = dict(low=low, high=high) if name == "epsilon-gamma-box" else {}
    e = lf.explain(net, x, rule=lf.composite(name, **kw))
    zb = dict(zero_params="bias")
    make = {
        "z-plus": lambda: zr.ZPlus(stabilizer=1e-30, **zb),
        "flat": lambda: zr.Flat(stabilizer=1e-30),
        "epsilon": lambda: zr.Epsilon(1e-2, **zb),
        "w-square": lambda: zr.WSquare(stabilizer=1e-6, **zb),
        "alpha-beta": lambda: zr.AlphaBeta(2.0, 1.0, stabilizer=1e-30, **zb),
        "gamma-generalized": lambda: zr.Gamma(0.25, stabilizer=1e-2, **zb),
        "z-box": lambda: zr.ZBox(torch.from_numpy(low[None]), torch.from_numpy(high[None])),
    }
    rules = [make[b.rule]() for b in e.boundaries if b.rule not in ("passthru", "SKIPPED")]
    _close(e.relevance, _zennit_layers(model, x, rules, e.explained_class))
