"""lrpfast: fast Layer-wise Relevance Propagation for dense networks.

>>> import lrpfast as lf
>>> net = lf.Network((1, 6, 6), [lf.Dense(16, "relu"), lf.Dense(2), lf.SoftMax()], seed=0)
>>> e = lf.explain(net, np.ones((1, 6, 6)), rule="epsilon")
"""

try:
    from . import _kernels  # noqa: F401  (compiled; no pure-Python fallback)
except ImportError as exc:  # pragma: no cover - depends on the build (tested in a subprocess)
    def _inside_source_tree():
        """True when this lrpfast is an unbuilt source checkout (sources, no module)."""
        import glob
        import os

        here = os.path.dirname(os.path.abspath(__file__))
        root = os.path.dirname(here)
        built = glob.glob(os.path.join(here, "_kernels*.so")) + glob.glob(
            os.path.join(here, "_kernels*.pyd"))
        return (not built and os.path.isfile(os.path.join(here, "_kernels.pyx"))
                and any(os.path.isfile(os.path.join(root, f))
                        for f in ("pyproject.toml", "setup.py"))), root

    _shadowed, _root = _inside_source_tree()
    if _shadowed:
        raise ImportError(
            f"lrpfast was imported from its source tree ({_root}), which has no "
            "compiled kernels: Python looks in the current folder first, so this "
            "folder hides any installed lrpfast. You are inside the source tree; cd "
            "elsewhere, or build in place (python setup.py build_ext --inplace)."
        ) from exc
    raise ImportError(
        "lrpfast's compiled kernels (lrpfast._kernels) are missing or broken "
        f"({exc}). Build them with `pip install .` from the source tree (needs a "
        "C compiler), or `python setup.py build_ext --inplace` for development."
    ) from exc

from .explain import BatchExplanation, Boundary, Explanation, explain, explain_batch
from .interop import from_keras, from_onnx, from_sklearn, from_torch
from .layers import (Activation, Affine, Dense, Dropout, Flatten, Identity, Layer, LayerNorm,
                     ReLU, Sigmoid, SoftMax, Tanh)
from .network import Network, load
from .report import lrp_report
from .train import train
from . import datasets
from . import evaluate
from . import plot  # imports matplotlib only when it draws
from .rules import (AlphaBeta, Epsilon, Flat, Gamma, GeneralizedGamma, Rule, WSquare, ZBox,
                    ZPlus)
from .composites import Composite, composite

__version__ = "0.1.0"

__all__ = [
    "Activation", "Affine", "AlphaBeta", "BatchExplanation", "Boundary", "Composite",
    "Dense", "Dropout", "Epsilon", "Explanation", "Flat", "Flatten", "Gamma",
    "GeneralizedGamma", "Identity", "WSquare", "ZBox", "ZPlus", "composite", "Layer",
    "LayerNorm",
    "Network", "ReLU", "Rule", "Sigmoid", "SoftMax", "Tanh", "explain",
    "datasets", "evaluate", "explain_batch", "from_keras", "from_onnx", "from_sklearn",
    "from_torch", "load", "lrp_report", "plot", "train", "__version__",
]
