"""Bring your own model: networks from scikit-learn, PyTorch, Keras and ONNX.

Each converter copies the source's weights into a :class:`~lrpfast.network.Network`
that computes exactly what the source computes (in inference mode), so
:func:`lrpfast.explain` explains the source model itself.  The source is
never modified.  The frameworks are imported inside the functions: lrpfast
itself needs none of them (install one with ``pip install "lrpfast[sklearn]"``,
``"lrpfast[torch]"``, ``"lrpfast[keras]"`` or ``"lrpfast[onnx]"``).

One module per framework (``_sklearn``, ``_torch``, ``_keras``, ``_onnx``)
translates its layers into the calls of :class:`~lrpfast.interop._chain.Chain`,
which holds the rules every chain obeys and builds the Network.

Layer mapping
-------------
scikit-learn has no separate activation modules, so each of its layers
becomes one ``Dense(units, activation)``; Keras's ``Dense(activation=...)``
does too.  For PyTorch and ONNX every module, call or operator becomes one
lrpfast layer of its own (``Linear`` -> ``Dense`` with a linear activation,
then ``ReLU``/``Tanh``/``Sigmoid`` layers), so ``net.layers[k]`` and the
boundaries of a report line up with the source's modules.  Folding the
activation into the Dense layer would not change any explanation: LRP passes
relevance through activations unchanged either way.  Scalers become
:class:`~lrpfast.Affine` layers (relevance passes through), PCA and
TruncatedSVD linear ``Dense`` layers (they take a rule).

Classes and logits
------------------
The explained class is ``argmax(output)`` (or ``forced_class``) and the
relevance is seeded with that class's logit: the input of a trailing SoftMax,
or of a trailing Sigmoid (the log-odds), or the output itself otherwise.  For
a binary :class:`~sklearn.neural_network.MLPClassifier` (and any model ending
in a single sigmoid unit) there is one output, so the explained "class" is
always ``0``: the logit ``z = log(p / (1 - p))`` of the *positive* class
``model.classes_[1]``.  Positive relevance speaks for ``classes_[1]``,
negative relevance for ``classes_[0]``; every LRP rule is linear in the seed,
so the explanation of ``classes_[0]`` (logit ``-z``) is the negated relevance.
"""

from ._keras import from_keras
from ._onnx import from_onnx
from ._sklearn import from_sklearn
from ._torch import from_torch

__all__ = ["from_keras", "from_onnx", "from_sklearn", "from_torch"]
