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

def _zennit(model, x, rule_for_linear, target):
    try:
        from zennit.attribution import Gradient
        from zennit.composites import LayerMapComposite
    except Exception as exc:  # torchvision import failures are not ImportErrors only
        pytest.skip(f"zennit cannot be imported here: {exc}")
    composite = LayerMapComposite(layer_map=[(torch.nn.Linear, rule_for_linear)])
    xt = torch.from_numpy(x[None]).requires_grad_(True)
    with Gradient(model=model, composite=composite) as attributor:
        out = model(xt)
        seed_grad = torch.zeros_like(out)
        seed_grad[0, target] = 1.0
        _, rel = attributor(xt, seed_grad * out)
    return rel.detach().numpy()[0]


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
