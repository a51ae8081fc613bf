"""from_torch on modules that are not nn.Sequential, through torch.fx.

The forward is compared with the module's own; the relevance with a lrpfast
network built by hand from the module's parameters; every refusal names the
fx node and its op.
"""

import numpy as np
import pytest

import lrpfast as lf
from _interop_common import close_forward, same_relevance, set_params

torch = pytest.importorskip("torch")
nn = torch.nn
F = nn.functional


class MLP(nn.Module):
    """Every supported call kind, as people write them."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 12)
        self.fc2 = nn.Linear(12, 10)
        self.fc3 = nn.Linear(10, 8)
        self.out = nn.Linear(8, 3)
        self.norm = nn.LayerNorm(10)
        self.drop = nn.Dropout(0.2)
        self.act = nn.Tanh()

    def forward(self, x):
        x = x.view(x.size(0), -1)                    # (B, 4, 4) -> (B, 16)
        x = F.relu(self.fc1(x))
        x = F.dropout(x, p=0.1, training=self.training)
        x = torch.tanh(self.fc2(x))
        x = self.norm(x).reshape(x.shape[0], 2, 5)   # reshapes keep the batch first
        x = torch.flatten(x, 1)
        x = torch.sigmoid(F.linear(x, self.fc3.weight, self.fc3.bias))
        x = self.drop(torch.relu(x).tanh().relu())
        x = self.act(x).view(-1, 8).sigmoid()
        return F.softmax(self.out(x), dim=1)


def _by_hand(m, dtype):
    """The same network written out with lrpfast layers and m's parameters."""
    p = lambda t: t.detach().numpy().astype(np.float64)
    net = lf.Network((4, 4), [
        lf.Flatten(), lf.Dense(12), lf.ReLU(), lf.Dropout(0.1), lf.Dense(10), lf.Tanh(),
        lf.LayerNorm(), lf.Flatten(), lf.Dense(8), lf.Sigmoid(), lf.ReLU(), lf.Tanh(),
        lf.ReLU(), lf.Dropout(0.2), lf.Tanh(), lf.Flatten(), lf.Sigmoid(), lf.Dense(3),
        lf.SoftMax()], dtype=dtype, seed=0)
    return set_params(net, {
        1: dict(weight=p(m.fc1.weight).T, bias=p(m.fc1.bias)),
        4: dict(weight=p(m.fc2.weight).T, bias=p(m.fc2.bias)),
        6: dict(weight=p(m.norm.weight), bias=p(m.norm.bias)),
        8: dict(weight=p(m.fc3.weight).T, bias=p(m.fc3.bias)),
        17: dict(weight=p(m.out.weight).T, bias=p(m.out.bias))})


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_traced_module(dtype):
    torch.manual_seed(0)
    m = MLP()
    with torch.no_grad():
        m.norm.weight.add_(0.3 * torch.randn(10))
        m.norm.bias.add_(0.3 * torch.randn(10))
    m = m.eval() if dtype == "float32" else m.eval().double()
    net = lf.from_torch(m, input_shape=(4, 4))
    assert net.dtype == np.dtype(dtype) and net.input_shape == (4, 4)
    assert [type(l).__name__ for l in net.layers] == [
        type(l).__name__ for l in _by_hand(m, dtype).layers]
    X = np.random.default_rng(0).normal(size=(24, 4, 4)).astype(dtype)
    with torch.no_grad():
        want = m(torch.as_tensor(X)).numpy()
    close_forward("torch.fx", net.forward(X), want, dtype)
    same_relevance(net, _by_hand(m, dtype), list(X[:3]))


def test_traced_module_is_not_touched_and_reads_inference_mode():
    torch.manual_seed(1)
    m = MLP().train()                                # dropout on: read as inference
    state = {k: v.clone() for k, v in m.state_dict().items()}
    net = lf.from_torch(m, input_shape=(4, 4))
    assert m.training
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in state.items())
    X = np.random.default_rng(1).normal(size=(5, 4, 4)).astype("float32")
    with torch.no_grad():
        close_forward("torch.fx", net.forward(X), m.eval()(torch.as_tensor(X)).numpy(),
                      "float32")


def test_plain_modules_and_input_shape_from_the_first_linear():
    torch.manual_seed(2)
    lin = nn.Linear(5, 3).eval()
    net = lf.from_torch(lin)                         # a bare Linear traces too
    assert net.input_shape == (5,)
    x = np.random.default_rng(2).normal(size=(4, 5)).astype("float32")
    with torch.no_grad():
        close_forward("torch.fx", net.forward(x), lin(torch.as_tensor(x)).numpy(),
                      "float32")

    class Head(nn.Module):                           # no reshape: takes x.reshape(B, -1)
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 2)

        def forward(self, x):
            return torch.sigmoid(self.fc(x))

    head = Head().eval()
    net = lf.from_torch(head, input_shape=(2, 3))
    assert net.input_shape == (2, 3)
    x = np.random.default_rng(3).normal(size=(4, 2, 3)).astype("float32")
    with torch.no_grad():
        want = head(torch.as_tensor(x.reshape(4, -1))).numpy()
    close_forward("torch.fx", net.forward(x), want, "float32")


def _module(forward, **children):
    """A module with ``children`` whose forward is ``forward(self, x)``."""
    cls = type("Custom", (nn.Module,), {"forward": forward})
    m = cls()
    for name, child in children.items():
        setattr(m, name, child)
    return m


@pytest.mark.parametrize("forward, children, match", [
    (lambda self, x: x + self.fc(x), dict(fc=nn.Linear(4, 4)),
     r"node 'add' \(call_function add\) is not a link of a chain: it reads \['x', 'fc'\]"),
    (lambda self, x: torch.cat([x, self.fc(x)], 1), dict(fc=nn.Linear(4, 4)),
     r"node 'cat' \(call_function cat\) is not a link"),
    (lambda self, x: self.fc(torch.relu(x)) * 2, dict(fc=nn.Linear(4, 4)),
     r"node 'mul' \(call_function mul\)"),
    (lambda self, x: F.gelu(self.fc(x)), dict(fc=nn.Linear(4, 4)),
     r"node 'gelu' \(call_function gelu\) is not supported"),
    (lambda self, x: self.conv(x), dict(conv=nn.Conv2d(1, 1, 3)),
     r"node 'conv' \(call_module conv: Conv2d\) is not supported"),
    (lambda self, x: self.fc(x).view(1, -1), dict(fc=nn.Linear(4, 4)),
     r"node 'view' \(call_method view\) .*batch dimension first"),
    (lambda self, x: torch.flatten(self.fc(x)), dict(fc=nn.Linear(4, 4)),
     r"node 'flatten' \(call_function flatten\) flattens the batch"),
    (lambda self, x: F.softmax(self.fc(x), dim=0), dict(fc=nn.Linear(4, 4)),
     r"node 'softmax' \(call_function softmax\) has dim=0"),
    (lambda self, x: self.fc(x) if x.sum() > 0 else x, dict(fc=nn.Linear(4, 4)),
     r"torch.fx cannot trace"),
    (lambda self, x: self.fc(x).clamp(0, 1), dict(fc=nn.Linear(4, 4)),
     r"node 'clamp' \(call_method clamp\) is not supported"),
])
def test_refusals_name_the_node_and_its_op(forward, children, match):
    with pytest.raises(ValueError, match=match):
        lf.from_torch(_module(forward, **children), input_shape=(4,))


def test_two_inputs_and_dead_branches_are_refused():
    two = type("Two", (nn.Module,), {"forward": lambda self, x, y: x})()
    with pytest.raises(ValueError, match="forward takes 2 inputs"):
        lf.from_torch(two, input_shape=(3,))
    dead = _module(lambda self, x: (torch.relu(x), torch.tanh(x))[1])
    with pytest.raises(ValueError, match=r"node 'tanh' .*reads \['x'\].*'relu'"):
        lf.from_torch(dead, input_shape=(3,))
