"""LRP rules for dense layers: small parameterised objects in one registry.

A rule is given to :func:`lrpfast.explain` by name (``"epsilon"``,
``"gamma"``, ``"alpha-beta"``, ``"z-plus"``, ``"w-square"``, ``"flat"``,
``"gamma-generalized"``, parameterised by ``eps``, ``gamma``, ``alpha``), as
an object (``Epsilon(eps=...)``, ``ZBox(low, high)``, ...), as a list with one
per Dense layer, input side first (composite LRP), or as a named composite
(``"epsilon-plus"``, :func:`lrpfast.composite`, see :mod:`lrpfast.composites`).

Everything lrpfast knows about a rule is on its class: its name, the
``explain`` keywords it takes when given by name, the shares of the
conservation verdict it may use, its kernel code for the single-probe walk,
its batch implementation (:mod:`lrpfast._batch`) and its NumPy reference
(:mod:`lrpfast.reference`).  Adding a rule is one class here plus its kernels.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np

from . import _batch, reference
from ._validation import as_float_array, check_real

# Kernel codes (``_kernels.pyx``, RULE_*).
CODE_EPSILON = 0        # epsilon and gamma: p1 = eps, p2 = gamma
CODE_ALPHA_BETA = 1     # alpha-beta and z-plus: p1 = alpha, p2 = beta, p3 = eps
CODE_GAMMA_GEN = 2      # generalised gamma: p1 = eps, p2 = gamma
CODE_WSQUARE = 3        # p1 = eps
CODE_FLAT = 4
CODE_ZBOX = 5           # p1 = eps

# The keywords of explain() that parameterise a rule given by name, and their
# defaults (a value that differs from its default and that no rule uses warns).
DEFAULTS = {"eps": 1e-2, "gamma": 0.25, "alpha": 2.0}
# Their ranges (keywords of check_real).
RANGES = {"eps": dict(low=0.0, low_inclusive=False), "gamma": dict(low=0.0),
          "alpha": dict(low=1.0)}


def check_params(params, prefix=""):
    """Validate ``eps``/``gamma``/``alpha`` values of ``params`` (a dict) against
    :data:`RANGES`; errors name them as ``prefix + name`` (the CLI: ``--eps``).
    Returns the values as checked (floats)."""
    return {key: check_real(value, prefix + key, **RANGES[key])
            for key, value in params.items()}


def _positive(value, name):
    return check_real(value, name, low=0.0, low_inclusive=False)


def _nonneg(value, name):
    return check_real(value, name, low=0.0)


class Rule:
    """Base class of the dense-layer rules.

    Class attributes
    ----------------
    name : str
        Registry name, shown per boundary in reports.
    by_name : tuple of str or None
        The ``explain`` keywords (``eps``, ``gamma``, ``alpha``) the rule takes
        when given by name; None when it cannot be given by name.
    shares : tuple of str
        Shares of the conservation verdict the rule may use
        (``"stabilizer"``, ``"degenerate"``); see :mod:`lrpfast.report`.
    bias_enters : bool
        Whether ``absorb_bias=True`` lets the bias absorb relevance.
    """

    name = "rule"
    by_name = None
    shares = ()
    bias_enters = True

    def label(self):
        """Human-readable name with parameters, e.g. ``epsilon-rule (eps=0.01)``."""
        raise NotImplementedError

    def kernel_args(self):
        """``(code, p1, p2, p3)`` for the kernels: see ``_kernels.pyx``."""
        raise NotImplementedError

    def batch(self, cache, layer, A, S, R, absorb_bias):
        """One dense boundary of a batch: ``(R_in, shares (B, 4), Σ R_in per row)``."""
        raise NotImplementedError

    def reference(self, A, W, b, R, absorb_bias):
        """The NumPy reference of the rule: ``(R_in, shares)``."""
        raise NotImplementedError

    def uses(self):
        """The explain keywords this rule object took (for the unused-parameter warning)."""
        return self.by_name or ()

    def allowed_shares(self, absorb_bias):
        """The shares of the conservation verdict this rule object may use."""
        return (("bias",) if absorb_bias and self.bias_enters else ()) + self.object_shares()

    def object_shares(self):
        """The shares of this rule object: the class's ``shares``, unless its
        parameters add one (alpha-beta's stabiliser when ``eps > 0``)."""
        return self.shares

    # hooks with a network in hand (z-box needs them)
    def check_layer(self, net, k_dense, what):
        """Refuse a network position the rule cannot take (ValueError)."""

    def check_input(self, net, A, what):
        """Refuse a probe the rule cannot explain (ValueError), before any kernel."""

    def plan_aux(self, layer, absorb_bias):
        """Extra arrays of the compiled plan: ``(aux1, aux2, aux3)`` or Nones."""
        return None, None, None


@dataclass(frozen=True)
class Epsilon(Rule):
    """LRP-epsilon (Bach et al. 2015).

    ``R_i = a_i Σ_j w_ij R_j / (d_j + eps·sgn(d_j))`` with ``d_j = Σ_i a_i w_ij``
    (or ``z_j`` with ``absorb_bias=True``).

    Parameters
    ----------
    eps : float, default 1e-2
        Stabiliser, > 0.  Its sign follows the denominator.
    """

    eps: float = 1e-2
    name = "epsilon"
    by_name = ("eps",)
    shares = ("stabilizer",)

    def __post_init__(self):
        object.__setattr__(self, "eps", _positive(self.eps, "eps"))

    def label(self):
        return f"epsilon-rule (eps={self.eps:g})"

    def kernel_args(self):
        return CODE_EPSILON, self.eps, 0.0, 0.0

    def batch(self, cache, layer, A, S, R, absorb_bias):
        return _batch.epsilon(cache, layer, A, S, R, absorb_bias, self.eps, 0.0)

    def reference(self, A, W, b, R, absorb_bias):
        return reference.epsilon(A, W, b, R, self.eps, absorb_bias)


@dataclass(frozen=True)
class Gamma(Rule):
    """LRP-gamma (Montavon et al. 2019, "Layer-wise relevance propagation: an overview").

    The epsilon rule with ``w' = w + gamma·max(w, 0)`` and
    ``b' = b + gamma·max(b, 0)``: positive contributions are favoured.

    Parameters
    ----------
    gamma : float, default 0.25
        >= 0; 0 gives the epsilon rule.
    eps : float, default 1e-2
        Stabiliser, > 0.
    """

    gamma: float = 0.25
    eps: float = 1e-2
    name = "gamma"
    by_name = ("gamma", "eps")
    shares = ("stabilizer",)

    def __post_init__(self):
        object.__setattr__(self, "gamma", _nonneg(self.gamma, "gamma"))
        object.__setattr__(self, "eps", _positive(self.eps, "eps"))

    def label(self):
        return f"gamma-rule (gamma={self.gamma:g}, eps={self.eps:g})"

    def kernel_args(self):
        return CODE_EPSILON, self.eps, self.gamma, 0.0

    def batch(self, cache, layer, A, S, R, absorb_bias):
        return _batch.epsilon(cache, layer, A, S, R, absorb_bias, self.eps, self.gamma)

    def reference(self, A, W, b, R, absorb_bias):
        return reference.gamma(A, W, b, R, self.gamma, self.eps, absorb_bias)


@dataclass(frozen=True)
class AlphaBeta(Rule):
    """LRP-alpha-beta (Bach et al. 2015), ``beta = alpha - 1``.

    ``R_i = Σ_j R_j (alpha·c+_ij / P_j − beta·c−_ij / N_j)`` with
    ``c_ij = a_i w_ij``, ``P_j = Σ_i c+_ij``, ``N_j = Σ_i c−_ij``.  A term with
    a zero denominator is 0 and its neuron is counted as degenerate.

    Parameters
    ----------
    alpha : float, default 2.0
        >= 1.
    eps : float, default 0.0
        Optional stabiliser (>= 0), added to ``P_j`` and ``N_j`` with their
        signs (``P_j + eps``, ``N_j - eps``), as zennit does (zennit's default
        is 1e-6).  0 keeps the exact rule.  Not taken from ``explain``'s
        ``eps``: set it on the object.
    """

    alpha: float = 2.0
    eps: float = 0.0
    name = "alpha-beta"
    by_name = ("alpha",)
    shares = ("degenerate",)          # the stabiliser too when eps > 0

    def object_shares(self):
        return (("stabilizer",) if self.eps else ()) + self.shares

    def __post_init__(self):
        object.__setattr__(self, "alpha", check_real(self.alpha, "alpha", low=1.0))
        object.__setattr__(self, "eps", _nonneg(self.eps, "eps"))

    @property
    def beta(self):
        return self.alpha - 1.0

    def label(self):
        extra = f", eps={self.eps:g}" if self.eps else ""
        return f"alpha-beta-rule (alpha={self.alpha:g}, beta={self.beta:g}{extra})"

    def kernel_args(self):
        return CODE_ALPHA_BETA, self.alpha, self.beta, self.eps

    def batch(self, cache, layer, A, S, R, absorb_bias):
        return _batch.alpha_beta(cache, layer, A, S, R, absorb_bias, self.alpha,
                                 self.beta, self.eps)

    def reference(self, A, W, b, R, absorb_bias):
        return reference.alpha_beta(A, W, b, R, self.alpha, absorb_bias, eps=self.eps)


@dataclass(frozen=True)
class ZPlus(Rule):
    """LRP-z+ (Montavon et al. 2017, "Explaining nonlinear classification
    decisions with deep Taylor decomposition"): alpha-beta with alpha=1, beta=0.

    ``R_i = Σ_j R_j c+_ij / P_j`` with ``c+_ij = max(a_i w_ij, 0)`` and
    ``P_j = Σ_i c+_ij`` (plus ``max(b_j, 0)`` with ``absorb_bias``).  A zero
    ``P_j`` gives 0 and counts as degenerate.
    """

    name = "z-plus"
    by_name = ()
    shares = ("degenerate",)

    def label(self):
        return "z-plus-rule"

    def kernel_args(self):
        return CODE_ALPHA_BETA, 1.0, 0.0, 0.0

    def batch(self, cache, layer, A, S, R, absorb_bias):
        return _batch.alpha_beta(cache, layer, A, S, R, absorb_bias, 1.0, 0.0, 0.0)

    def reference(self, A, W, b, R, absorb_bias):
        return reference.alpha_beta(A, W, b, R, 1.0, absorb_bias)


@dataclass(frozen=True)
class WSquare(Rule):
    """LRP-w² (Montavon et al. 2017, deep Taylor decomposition).

    ``R_i = Σ_j w_ij² R_j / (d_j + eps)`` with ``d_j = Σ_i w_ij²`` (plus
    ``b_j²`` with ``absorb_bias``).  The input does not enter: suited to an
    input layer of unbounded real-valued features.

    Parameters
    ----------
    eps : float, default 1e-6
        Stabiliser, > 0.  Not taken from ``explain``'s ``eps``: set it on the
        object.
    """

    eps: float = 1e-6
    name = "w-square"
    by_name = ()
    shares = ("stabilizer",)

    def __post_init__(self):
        object.__setattr__(self, "eps", _positive(self.eps, "eps"))

    def label(self):
        return f"w-square-rule (eps={self.eps:g})"

    def kernel_args(self):
        return CODE_WSQUARE, self.eps, 0.0, 0.0

    def batch(self, cache, layer, A, S, R, absorb_bias):
        return _batch.w_square(cache, layer, R, absorb_bias, self.eps)

    def reference(self, A, W, b, R, absorb_bias):
        return reference.w_square(A, W, b, R, self.eps, absorb_bias)

    def plan_aux(self, layer, absorb_bias):
        return (_batch.w_square_denominator(layer, absorb_bias), None, None)


@dataclass(frozen=True)
class Flat(Rule):
    """LRP-flat (Lapuschkin et al. 2019): ``R_i = Σ_j R_j / n``.

    Every input gets the same share; the bias never enters, and relevance is
    conserved exactly.
    """

    name = "flat"
    by_name = ()
    shares = ()
    bias_enters = False

    def label(self):
        return "flat-rule"

    def kernel_args(self):
        return CODE_FLAT, 0.0, 0.0, 0.0

    def batch(self, cache, layer, A, S, R, absorb_bias):
        return _batch.flat(layer, R)

    def reference(self, A, W, b, R, absorb_bias):
        return reference.flat(A, W, b, R)


@dataclass(frozen=True)
class GeneralizedGamma(Rule):
    """Generalised LRP-gamma (Andéol et al. 2021; zennit's ``Gamma``).

    The sign of the pre-activation ``z_j = Σ_i a_i w_ij + b_j`` picks the
    favoured contributions: ``n_ij = c_ij + gamma·max(c_ij, 0)`` where
    ``z_j > 0``, ``c_ij + gamma·min(c_ij, 0)`` where ``z_j < 0``
    (``c_ij = a_i w_ij``); ``R_i = Σ_j n_ij R_j / (D_j + eps·sgn(D_j))`` with
    ``D_j = Σ_i n_ij`` (plus ``b_j + gamma·b±_j`` with ``absorb_bias``).  A
    neuron with ``z_j = 0`` passes nothing and counts as degenerate.  For
    ``a >= 0`` and ``z_j > 0`` it is the plain gamma rule.

    Parameters
    ----------
    gamma : float, default 0.25
        >= 0.
    eps : float, default 1e-2
        Stabiliser, > 0.
    """

    gamma: float = 0.25
    eps: float = 1e-2
    name = "gamma-generalized"
    by_name = ("gamma", "eps")
    shares = ("stabilizer", "degenerate")

    def __post_init__(self):
        object.__setattr__(self, "gamma", _nonneg(self.gamma, "gamma"))
        object.__setattr__(self, "eps", _positive(self.eps, "eps"))

    def label(self):
        return f"gamma-generalized-rule (gamma={self.gamma:g}, eps={self.eps:g})"

    def kernel_args(self):
        return CODE_GAMMA_GEN, self.eps, self.gamma, 0.0

    def batch(self, cache, layer, A, S, R, absorb_bias):
        return _batch.gamma_generalized(cache, layer, A, S, R, absorb_bias, self.gamma,
                                        self.eps)

    def reference(self, A, W, b, R, absorb_bias):
        return reference.gamma_generalized(A, W, b, R, self.gamma, self.eps, absorb_bias)


@dataclass(frozen=True, eq=False)
class ZBox(Rule):
    """LRP-z^B, the box rule (Montavon et al. 2017), for the first Dense layer.

    For inputs known to lie in ``[low, high]`` (e.g. pixels):
    ``c_ij = a_i w_ij − l_i max(w_ij, 0) − h_i min(w_ij, 0)``,
    ``R_i = Σ_j c_ij R_j / (d_j + eps·sgn(d_j))`` with ``d_j = Σ_i c_ij``.  The
    bias cancels, so both bias modes agree.  Inside the bounds every
    ``c_ij >= 0``.

    Parameters
    ----------
    low, high : float or array-like of shape ``net.input_shape``
        The bounds, finite, ``low < high`` everywhere.  A probe outside them
        is refused.
    eps : float, default 1e-6
        Stabiliser, > 0.
    """

    low: object
    high: object
    eps: float = 1e-6
    name = "z-box"
    by_name = None
    shares = ("stabilizer",)
    bias_enters = False

    def __post_init__(self):
        # (as_float_array gives a 0-d input one dimension: keep scalars 0-d)
        low = as_float_array(self.low, "low", np.float64, copy=True).reshape(
            np.shape(self.low))
        high = as_float_array(self.high, "high", np.float64, copy=True).reshape(
            np.shape(self.high))
        if low.shape != high.shape and low.ndim and high.ndim:
            raise ValueError(
                f"low and high must be scalars or arrays of the same shape (the "
                f"network's input_shape), got shapes {low.shape} and {high.shape}")
        bad = ~(np.broadcast_to(low, np.broadcast_shapes(low.shape, high.shape))
                < high)
        if bad.any():
            where = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), bad.shape))
            lo = float(low[where] if low.ndim else low)
            hi = float(high[where] if high.ndim else high)
            raise ValueError(
                f"low must be < high everywhere, got low={lo:g} >= high={hi:g}"
                + (f" at index {where}" if where else ""))
        low.flags.writeable = False
        high.flags.writeable = False
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "eps", _positive(self.eps, "eps"))
        object.__setattr__(self, "_key", (low.shape, low.tobytes(), high.shape,
                                          high.tobytes(), self.eps))

    def __eq__(self, other):
        return type(other) is ZBox and self._key == other._key

    def __hash__(self):
        return hash(self._key)

    def label(self):
        def show(v):
            return f"{float(v):g}" if v.ndim == 0 else f"array{v.shape}"
        return f"z-box-rule (low={show(self.low)}, high={show(self.high)}, eps={self.eps:g})"

    def kernel_args(self):
        return CODE_ZBOX, self.eps, 0.0, 0.0

    def bounds(self, n, dtype):
        """``(low, high)`` flattened to ``n`` values of ``dtype``."""
        cached = self.__dict__.get("_flat")
        if cached is not None and cached[0] == (n, np.dtype(dtype)):
            return cached[1]
        out = tuple(np.ascontiguousarray(np.broadcast_to(v.ravel() if v.ndim else v, (n,)),
                                         dtype=dtype) for v in (self.low, self.high))
        object.__setattr__(self, "_flat", ((n, np.dtype(dtype)), out))
        return out

    def check_layer(self, net, k_dense, what):
        if k_dense != 0:
            raise ValueError(
                f"{what}: the z-box rule applies only to the first Dense layer (its "
                f"input is the probe), got it for Dense layer {k_dense}")
        k = next(k for k, layer in enumerate(net.layers) if layer.lrp == "dense")
        before = [layer for layer in net.layers[:k] if layer._op != "alias"]
        if before:
            raise ValueError(
                f"{what}: the z-box rule needs the probe as the input of the first "
                f"Dense layer, but layer {net.layers.index(before[0])} "
                f"({before[0].name}) changes it")
        for name, v in (("low", self.low), ("high", self.high)):
            if v.ndim and v.shape != tuple(net.input_shape):
                raise ValueError(
                    f"{name} must be a scalar or an array of the network's input_shape "
                    f"{tuple(net.input_shape)}, got shape {v.shape}")

    def check_input(self, net, A, what):
        low, high = self.bounds(A.shape[1], A.dtype)
        bad = (A < low) | (A > high)
        if bad.any():
            from .report import format_position     # only to word the error
            flat = int(np.argmax(bad.ravel()))
            r, i = divmod(flat, A.shape[1])
            row = f"probe {r}, " if what == "X" else ""
            raise ValueError(
                f"{what}: z-box: {row}position {format_position(i, net.input_shape)} "
                f"has x={float(A[r, i]):g} outside "
                f"[{float(low[i]):g}, {float(high[i]):g}]")

    def batch(self, cache, layer, A, S, R, absorb_bias):
        low, high = self.bounds(A.shape[1], A.dtype)
        return _batch.z_box(cache, layer, A, S, R, low, high, self.eps)

    def reference(self, A, W, b, R, absorb_bias):
        low, high = self.bounds(A.shape[1], A.dtype)
        return reference.z_box(A, W, b, R, low, high, self.eps)

    def plan_aux(self, layer, absorb_bias):
        low, high = self.bounds(layer.n_in, layer.weight.dtype)
        return (_batch.z_box_offset(layer, low, high), low, high)


#: Rule classes by name (the registry; report.py reads the shares from it).
RULES = {cls.name: cls for cls in (Epsilon, Gamma, AlphaBeta, ZPlus, WSquare, Flat,
                                   GeneralizedGamma, ZBox)}
#: Names that ``rule=`` accepts as strings.
NAMED = tuple(name for name, cls in RULES.items() if cls.by_name is not None)


def make_rule(rule, *, eps=1e-2, gamma=0.25, alpha=2.0, name="rule"):
    """A :class:`Rule` from a rule object or a rule name plus parameters."""
    if isinstance(rule, Rule):
        return rule
    if isinstance(rule, str):
        cls = RULES.get(rule)
        if cls is None or cls.by_name is None:
            from .composites import COMPOSITES
            hint = (f"; the z-box rule needs its bounds: use lrpfast.ZBox(low, high)"
                    if rule == "z-box" else "")
            inside = " (a composite cannot be one entry of a list)" if (
                rule in COMPOSITES and name != "rule") else ""
            raise ValueError(
                f"{name} must be one of {', '.join(repr(r) for r in NAMED)}, a composite "
                f"name ({', '.join(repr(c) for c in COMPOSITES)}), a rule object or a "
                f"list of them; got {rule!r}{hint}{inside}")
        params = dict(eps=eps, gamma=gamma, alpha=alpha)
        return cls(**{k: params[k] for k in cls.by_name})
    raise TypeError(
        f"{name} must be a rule name, a Rule object, a composite or a list of them; "
        f"got {rule!r}")


def resolve_rules(rule, n_dense, *, eps=1e-2, gamma=0.25, alpha=2.0, net=None):
    """One :class:`Rule` per Dense layer, input side first (a :class:`RuleSet`).

    The ``eps``/``gamma``/``alpha`` keywords are validated even when the
    chosen rule does not use them, so a typo never passes silently; a value
    that differs from its default and that no rule uses is warned about
    (``UserWarning``).  With ``net``, each rule checks its position in it
    (z-box: first Dense layer only).  Results are memoised: explaining one
    probe must not pay for this twice.
    """
    if isinstance(rule, list):
        rule = tuple(rule)
    try:
        rules, unused = _resolve_cached(rule, n_dense, eps, gamma, alpha)
    except TypeError as exc:
        if "unhashable" not in str(exc):
            raise
        rules, unused = _resolve(rule, n_dense, eps, gamma, alpha)
    for key in unused:
        warnings.warn(
            f"{key}={dict(eps=eps, gamma=gamma, alpha=alpha)[key]!r} is not used by "
            f"the rule(s) {rules.label}; it has no effect", UserWarning, stacklevel=4)
    if net is not None and rules.needs_check:
        one = rules.name or len(set(rules)) == 1     # the error names "rule" itself
        for k, r in enumerate(rules):
            r.check_layer(net, k, "rule" if one else f"rule[{k}]")
    return rules


def _resolve(rule, n_dense, eps, gamma, alpha):
    given = dict(eps=eps, gamma=gamma, alpha=alpha)
    check_params(given)
    from .composites import COMPOSITES, Composite, composite
    name = None
    used = set()          # the keywords of explain that reached a rule
    if isinstance(rule, str) and rule in COMPOSITES:
        rule = composite(rule, _warn=False, **given)
        used = set(rule.used)
    if isinstance(rule, Composite):
        rules, name = rule.rules(n_dense), rule.name
    elif isinstance(rule, (list, tuple)):
        if len(rule) != n_dense:
            raise ValueError(
                f"rule: a list needs one rule per Dense layer ({n_dense}), "
                f"got {len(rule)}")
        rules = [make_rule(r, eps=eps, gamma=gamma, alpha=alpha, name=f"rule[{k}]")
                 for k, r in enumerate(rule)]
        used = {u for r, given_r in zip(rules, rule) if isinstance(given_r, str)
                for u in r.uses()}
    else:
        r = make_rule(rule, eps=eps, gamma=gamma, alpha=alpha)
        rules = [r] * n_dense
        used = set(r.uses()) if isinstance(rule, str) else set()
    unused = tuple(k for k in DEFAULTS if k not in used and given[k] != DEFAULTS[k])
    return RuleSet(rules, name), unused


class RuleSet(tuple):
    """One rule per Dense layer (a tuple) with its hash and label computed once.

    ``name`` is the composite's name, or None.
    """

    def __new__(cls, rules, name=None):
        self = super().__new__(cls, rules)
        self._hash = hash((tuple.__hash__(self), name))
        self.name = name
        self.label = _label(self, name)
        self.needs_check = any(type(r).check_layer is not Rule.check_layer for r in self)
        self.checks_input = any(type(r).check_input is not Rule.check_input for r in self)
        return self

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        return tuple.__eq__(self, other) and self.name == getattr(other, "name", None)

    def __ne__(self, other):
        return not self == other


# typed: eps=True must not hit the cache entry of eps=1
_resolve_cached = functools.lru_cache(maxsize=256, typed=True)(_resolve)


def _label(rules, name=None):
    """The rule label of a (possibly composite) rule list."""
    labels = list(dict.fromkeys(r.label() for r in rules))
    if name is not None:
        return f"{name} (" + " / ".join(r.label() for r in rules) + ")"
    return labels[0] if len(labels) == 1 else "composite: " + " / ".join(
        r.label() for r in rules)
