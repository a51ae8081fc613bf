"""LRP rules for dense layers: small parameterised objects in one registry.

A rule is given to :func:`lrpfast.explain` by name (``"epsilon"``,
``"gamma"``, ``"alpha-beta"``, parameterised by ``eps``, ``gamma``,
``alpha``), as an object (``Epsilon(eps=...)``, ...) or as a list with one
per Dense layer, input side first (composite LRP).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ._validation import check_real

# Kernel codes (``_kernels.pyx``): epsilon and gamma share one kernel.
CODE_EPSILON = 0
CODE_ALPHA_BETA = 1


class Rule:
    """Base class of the dense-layer rules."""

    name = "rule"

    def label(self):
        """Human-readable name with parameters, e.g. ``epsilon-rule (eps=0.01)``."""
        raise NotImplementedError

    def kernel_args(self):
        """``(code, p1, p2)`` for the kernels: see ``_kernels.pyx``."""
        raise NotImplementedError


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

    def __post_init__(self):
        object.__setattr__(self, "eps", check_real(self.eps, "eps", low=0.0,
                                                   low_inclusive=False))

    def label(self):
        return f"epsilon-rule (eps={self.eps:g})"

    def kernel_args(self):
        return CODE_EPSILON, self.eps, 0.0


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

    def __post_init__(self):
        object.__setattr__(self, "gamma", check_real(self.gamma, "gamma", low=0.0))
        object.__setattr__(self, "eps", check_real(self.eps, "eps", low=0.0,
                                                   low_inclusive=False))

    def label(self):
        return f"gamma-rule (gamma={self.gamma:g}, eps={self.eps:g})"

    def kernel_args(self):
        return CODE_EPSILON, self.eps, self.gamma


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
    """

    alpha: float = 2.0
    name = "alpha-beta"

    def __post_init__(self):
        object.__setattr__(self, "alpha", check_real(self.alpha, "alpha", low=1.0))

    @property
    def beta(self):
        return self.alpha - 1.0

    def label(self):
        return f"alpha-beta-rule (alpha={self.alpha:g}, beta={self.beta:g})"

    def kernel_args(self):
        return CODE_ALPHA_BETA, self.alpha, self.beta


# Rule names -> constructor from the (eps, gamma, alpha) keyword arguments.
RULES = {
    "epsilon": lambda eps, gamma, alpha: Epsilon(eps=eps),
    "gamma": lambda eps, gamma, alpha: Gamma(gamma=gamma, eps=eps),
    "alpha-beta": lambda eps, gamma, alpha: AlphaBeta(alpha=alpha),
}


def make_rule(rule, *, eps=1e-2, gamma=0.25, alpha=2.0, name="rule"):
    """A :class:`Rule` from a rule object or a rule name plus parameters."""
    if isinstance(rule, Rule):
        return rule
    if isinstance(rule, str):
        if rule not in RULES:
            raise ValueError(
                f"{name} must be one of {', '.join(repr(r) for r in RULES)} "
                f"(or a rule object or a list of them); got {rule!r}")
        return RULES[rule](eps, gamma, alpha)
    raise TypeError(
        f"{name} must be a rule name, a Rule object or a list of them; got {rule!r}")


def resolve_rules(rule, n_dense, *, eps=1e-2, gamma=0.25, alpha=2.0):
    """One :class:`Rule` per Dense layer, input side first (a tuple).

    The ``eps``/``gamma``/``alpha`` keywords are validated even when the
    chosen rule does not use them, so a typo never passes silently.
    Results are memoised: explaining one probe must not pay for this twice.
    """
    if isinstance(rule, list):
        rule = tuple(rule)
    try:
        return _resolve_cached(rule, n_dense, eps, gamma, alpha)
    except TypeError as exc:
        if "unhashable" not in str(exc):
            raise
    return _resolve(rule, n_dense, eps, gamma, alpha)


def _resolve(rule, n_dense, eps, gamma, alpha):
    check_real(eps, "eps", low=0.0, low_inclusive=False)
    check_real(gamma, "gamma", low=0.0)
    check_real(alpha, "alpha", low=1.0)
    if isinstance(rule, (list, tuple)):
        if len(rule) != n_dense:
            raise ValueError(
                f"rule: a list needs one rule per Dense layer ({n_dense}), "
                f"got {len(rule)}")
        return RuleSet(make_rule(r, eps=eps, gamma=gamma, alpha=alpha, name=f"rule[{k}]")
                       for k, r in enumerate(rule))
    return RuleSet((make_rule(rule, eps=eps, gamma=gamma, alpha=alpha),) * n_dense)


class RuleSet(tuple):
    """One rule per Dense layer (a tuple) with its hash and label computed once."""

    def __new__(cls, rules):
        self = super().__new__(cls, rules)
        self._hash = tuple.__hash__(self)
        self.label = _label(self)
        return self

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        return tuple.__eq__(self, other)

    def __ne__(self, other):
        return tuple.__ne__(self, other)


# typed: eps=True must not hit the cache entry of eps=1
_resolve_cached = functools.lru_cache(maxsize=256, typed=True)(_resolve)


def _label(rules):
    """The rule label of a (possibly composite) rule list."""
    labels = list(dict.fromkeys(r.label() for r in rules))
    return labels[0] if len(labels) == 1 else "composite: " + " / ".join(
        r.label() for r in rules)
