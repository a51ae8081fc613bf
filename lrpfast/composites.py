"""Named composites: one rule per Dense layer, chosen by the layer's position.

The recommendation of the LRP overview (Montavon et al. 2019) as presets, with
the names zennit uses:

=============================  ==========  =================  =======
composite                      first       middle             last
=============================  ==========  =================  =======
``epsilon-plus``               z-plus      z-plus             epsilon
``epsilon-plus-flat``          flat        z-plus             epsilon
``epsilon-gamma-box``          z-box       gamma-generalized  epsilon
``epsilon-alpha2-beta1``       alpha-beta  alpha-beta         epsilon
``epsilon-alpha2-beta1-flat``  flat        alpha-beta         epsilon
``epsilon-w-square``           w-square    epsilon            epsilon
=============================  ==========  =================  =======

A composite is exactly that list of rules, each built as ``explain`` builds a
rule given by name from ``eps``, ``gamma`` and ``alpha`` (so ``eps`` goes to
the epsilon and gamma-generalized rules, ``gamma`` to gamma-generalized,
``alpha`` to alpha-beta, whose default 2 is the composite's name; the
stabilisers of w-square, z-box and alpha-beta keep their own defaults).  With
a single Dense layer the first-layer rule wins.

Unlike zennit, whose composites map z-plus, gamma and z-box only onto
convolutions (so on a purely dense network every zennit composite is
all-epsilon), lrpfast maps them onto Dense layers: dense networks are all it
explains.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields

from .rules import DEFAULTS, RULES, ZBox, check_params, make_rule

# name -> the rule names of its (first, middle, last) Dense layers
COMPOSITES = {
    "epsilon-plus": ("z-plus", "z-plus", "epsilon"),
    "epsilon-plus-flat": ("flat", "z-plus", "epsilon"),
    "epsilon-gamma-box": ("z-box", "gamma-generalized", "epsilon"),
    "epsilon-alpha2-beta1": ("alpha-beta", "alpha-beta", "epsilon"),
    "epsilon-alpha2-beta1-flat": ("flat", "alpha-beta", "epsilon"),
    "epsilon-w-square": ("w-square", "epsilon", "epsilon"),
}


def _used(name):
    """The explain keywords that reach a rule of composite ``name``."""
    taken = {k for n in COMPOSITES[name] for k in (RULES[n].by_name or ())}
    return tuple(k for k in DEFAULTS if k in taken)


@dataclass(frozen=True, eq=False)
class Composite:
    """A named composite (see :func:`composite`); ``rule=`` accepts it."""

    name: str
    params: tuple           # sorted (key, value) pairs
    used: tuple             # explain keywords the composite passes on
    _box: object = None     # the ZBox of epsilon-gamma-box

    def rules(self, n_dense):
        """One rule per Dense layer, input side first, each built as ``explain``
        builds that rule by name (the z-box from the composite's bounds)."""
        first, middle, last = COMPOSITES[self.name]
        p = dict(self.params)
        out = []
        for k in range(n_dense):
            name = first if k == 0 else last if k == n_dense - 1 else middle
            out.append(self._box if name == "z-box" else make_rule(name, **p))
        return out

    def _key(self):
        return (self.name, self.params, self._box)

    def __eq__(self, other):
        return type(other) is Composite and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params)
        return f"composite({self.name!r}{', ' if args else ''}{args})"


def composite(name, *, eps=1e-2, gamma=0.25, alpha=2.0, low=None, high=None, _warn=True):
    """A named composite of rules, one per Dense layer.

    Parameters
    ----------
    name : str
        One of ``"epsilon-plus"``, ``"epsilon-plus-flat"``,
        ``"epsilon-gamma-box"``, ``"epsilon-alpha2-beta1"``,
        ``"epsilon-alpha2-beta1-flat"``, ``"epsilon-w-square"``.
    eps : float, default 1e-2
        Stabiliser of the epsilon (and gamma-generalized) layers, > 0.
    gamma : float, default 0.25
        Of the gamma-generalized layers (``epsilon-gamma-box``), >= 0.
    alpha : float, default 2.0
        Of the alpha-beta layers (``epsilon-alpha2-beta1*``), >= 1.
    low, high : float or array-like of shape ``net.input_shape``
        The z-box bounds; required by ``epsilon-gamma-box``, refused by the
        others.

    Returns
    -------
    Composite
        Accepted by ``rule=`` of :func:`lrpfast.explain` and friends.

    Notes
    -----
    ``explain(net, x, rule=name, eps=e, gamma=g, alpha=a)`` equals
    ``explain(net, x, rule=composite(name, eps=e, gamma=g, alpha=a))``.  A
    parameter the composite does not use warns when it differs from its
    default.  Unlike zennit's composites (which put z-plus, gamma and z-box
    only on convolutions), these apply to Dense layers.
    """
    if not isinstance(name, str) or name not in COMPOSITES:
        raise ValueError(
            f"composite name must be one of {', '.join(repr(c) for c in COMPOSITES)}; "
            f"got {name!r}")
    params = check_params(dict(eps=eps, gamma=gamma, alpha=alpha))
    used = _used(name)
    box = None
    if needs_bounds(name):
        missing = [k for k, v in (("low", low), ("high", high)) if v is None]
        if missing:
            raise ValueError(
                f"composite {name!r} needs the z-box bounds {' and '.join(missing)}: "
                f"lrpfast.composite({name!r}, low=..., high=...)")
        box = ZBox(low, high)
    elif low is not None or high is not None:
        raise TypeError(f"composite {name!r} takes no low/high (only "
                        "'epsilon-gamma-box' has a z-box layer)")
    if _warn:
        for k in DEFAULTS:
            if k not in used and params[k] != DEFAULTS[k]:
                warnings.warn(f"{k}={params[k]!r} is not used by composite {name!r}; it "
                              "has no effect", UserWarning, stacklevel=2)
    return Composite(name, tuple(sorted((k, params[k]) for k in used)), used, box)


def needs_bounds(name):
    """Whether the rule or composite registered as ``name`` needs z-box bounds.

    Asked of the registries: a composite says so in :data:`COMPOSITES`, a rule
    class by having ``low`` and ``high`` fields (:class:`~lrpfast.ZBox`).
    False for an unknown name.
    """
    if name in COMPOSITES:
        return "z-box" in COMPOSITES[name]
    cls = RULES.get(name)
    return cls is not None and {"low", "high"} <= {f.name for f in fields(cls)}
