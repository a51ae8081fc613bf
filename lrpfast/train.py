"""Mini-batch SGD with momentum and softmax cross-entropy, in NumPy.

The loss is the softmax cross-entropy of the *logits*: the input of a
trailing :class:`~lrpfast.layers.SoftMax` layer, or the network's output
when the last layer is not a SoftMax.  That is also what LRP seeds from, so
the trained logits are the explained ones.

Backpropagation follows scikit-learn's ``_multilayer_perceptron.py``: the
forward pass keeps every boundary activation, and the activation derivatives
are written through the activation's output (``layers.DERIVATIVES``).  Each
layer type has one forward-in-training and one backward function in
``_BACKPROP``; a layer without an entry is refused before anything runs.

Weights change only by assignment (``layer.weight = ...``), which validates
them and bumps the layer's version, so derived-weight caches stay correct.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._progress import progress_bar
from ._validation import check_bool, check_int, check_real, check_rng
from .layers import (DERIVATIVES, Activation, Affine, Dense, Dropout, Identity,
                     LayerNorm, SoftMax)

__all__ = ["History", "Trainer", "train"]


# ---------------------------------------------------------------------------
# Per-layer forward (training mode) and backward.
#
# forward(layer, A, rng) -> (out, cache)
# backward(layer, dout, A, out, cache) -> (dA, {param name: gradient})
# ---------------------------------------------------------------------------

def _plain_forward(layer, A, rng):
    return layer._forward(A), None


def _identity_backward(layer, dout, A, out, cache):
    return dout, {}


def _dense_backward(layer, dout, A, out, cache):
    # out = f(z), z = A @ W + b;  dz = dout * f'(z) with f' through f(z)
    dz = dout * DERIVATIVES[layer.activation](out)
    grads = {"weight": A.T @ dz,          # dW = A^T dz
             "bias": dz.sum(axis=0)}      # db = Σ_batch dz
    return dz @ layer.weight.T, grads     # dA = dz W^T


def _activation_backward(layer, dout, A, out, cache):
    return dout * DERIVATIVES[layer.activation](out), {}


def _dropout_forward(layer, A, rng):
    # Inverted dropout: kept units are scaled by 1/(1 - rate) in training, so
    # inference (identity) needs no rescaling.
    if rng is None or layer.rate == 0.0:
        return A, None
    keep = 1.0 - layer.rate
    mask = (rng.random(A.shape) < keep).astype(A.dtype) / A.dtype.type(keep)
    return A * mask, mask


def _dropout_backward(layer, dout, A, out, cache):
    return (dout if cache is None else dout * cache), {}


def _softmax_backward(layer, dout, A, out, cache):
    # Jacobian of s = softmax(a): ds_k/da_i = s_k (δ_ki - s_i), so
    # dA = s * (dout - Σ_k dout_k s_k).  (A trailing SoftMax never gets here:
    # the cross-entropy is taken on its input.)
    return out * (dout - (dout * out).sum(axis=1, keepdims=True)), {}


def _layernorm_forward(layer, A, rng):
    xhat, inv_sigma = layer._normalise(A)
    return xhat * layer.weight + layer.bias, (xhat, inv_sigma)


def _layernorm_backward(layer, dout, A, out, cache):
    # y = xhat * g + b, xhat = (x - mean) / sigma over the n features:
    # dx = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sigma
    xhat, inv_sigma = cache
    dxhat = dout * layer.weight
    dA = inv_sigma * (dxhat - dxhat.mean(axis=1, keepdims=True)
                      - xhat * (dxhat * xhat).mean(axis=1, keepdims=True))
    return dA, {"weight": (dout * xhat).sum(axis=0), "bias": dout.sum(axis=0)}


def _affine_backward(layer, dout, A, out, cache):
    # y = x * scale + shift, element-wise: dx = dout * scale; the scaler's
    # parameters train like any other (dscale = Σ_batch dout * x).
    return dout * layer.scale, {"scale": (dout * A).sum(axis=0),
                                "shift": dout.sum(axis=0)}


# Layer class -> (forward in training, backward).  Looked up along the MRO, so
# ReLU/Tanh/Sigmoid use Activation's entry and Flatten uses Identity's.
_BACKPROP = {
    Dense: (_plain_forward, _dense_backward),
    Activation: (_plain_forward, _activation_backward),
    Dropout: (_dropout_forward, _dropout_backward),
    Identity: (_plain_forward, _identity_backward),
    SoftMax: (_plain_forward, _softmax_backward),
    LayerNorm: (_layernorm_forward, _layernorm_backward),
    Affine: (_plain_forward, _affine_backward),
}


def _backprop_entry(layer):
    for cls in type(layer).__mro__:
        if cls in _BACKPROP:
            return _BACKPROP[cls]
    return None


def _check_trainable(net):
    from .network import Network

    if not isinstance(net, Network):
        raise TypeError(f"net must be a lrpfast Network, got {type(net).__name__}")
    for k, layer in enumerate(net.layers):
        if _backprop_entry(layer) is None:
            raise ValueError(
                f"net: cannot train through layer {k} ({layer.describe()}): "
                "no gradient is implemented for it")
    if net.n_outputs < 2:
        raise ValueError(
            f"net: softmax cross-entropy needs at least 2 outputs (classes), "
            f"the network has {net.n_outputs}")


def _logit_index(net):
    """k such that the logits are the activation ``a_k``.

    The input of a trailing SoftMax (which may be followed by Identity,
    Flatten or Dropout layers, inert at inference), else the output; for
    SoftMax heads the same choice as LRP's seeding in :mod:`lrpfast.explain`
    (which also seeds a trailing Sigmoid's input, the log-odds, but softmax
    cross-entropy does not train through a Sigmoid head).
    """
    layers = net.layers
    k = len(layers)
    while k > 0 and isinstance(layers[k - 1], Identity):
        k -= 1
    if k > 0 and isinstance(layers[k - 1], SoftMax):
        return k - 1
    return len(layers)


def _softmax_ce(logits, y):
    """Mean cross-entropy, its gradient w.r.t. the logits, and the predictions."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(len(y))
    log_p_true = z[rows, y].astype(np.float64) - np.log(s[:, 0].astype(np.float64))
    loss = float(-log_p_true.mean())
    grad = e / s
    grad[rows, y] -= 1
    grad /= len(y)
    return loss, grad, logits.argmax(axis=1)


def _loss_and_grads(net, A, y, rng=None):
    """Loss, per-layer parameter gradients and predictions for one batch.

    Parameters
    ----------
    net : Network
    A : ndarray of shape (B, n_inputs)
        Flat, validated batch in the network's dtype.
    y : ndarray of int64, shape (B,)
    rng : numpy.random.Generator or None
        Source of the dropout masks; ``None`` runs in inference mode
        (dropout off).

    Returns
    -------
    loss : float
        Mean softmax cross-entropy over the batch.
    grads : list of dict
        ``grads[k]`` maps parameter names of ``net.layers[k]`` to gradients.
    pred : ndarray of shape (B,)
        Predicted classes (argmax of the logits).
    """
    layers = net.layers
    # The cross-entropy is taken on the logits; layers after them (a trailing
    # SoftMax and inert layers) do not take part in training.
    n_run = _logit_index(net)
    acts, caches = [A], []
    for layer in layers[:n_run]:
        out, cache = _backprop_entry(layer)[0](layer, acts[-1], rng)
        acts.append(out)
        caches.append(cache)
    loss, d, pred = _softmax_ce(acts[-1], y)
    grads = [{} for _ in layers]
    for k in range(n_run - 1, -1, -1):
        d, grads[k] = _backprop_entry(layers[k])[1](
            layers[k], d, acts[k], acts[k + 1], caches[k])
    return loss, grads, pred


# ---------------------------------------------------------------------------
# Validation of data.
# ---------------------------------------------------------------------------

def _check_data(net, X, y):
    A, single = net._as_batch(X, "X")
    if single:
        raise ValueError(
            f"X must be a batch of shape (B, {', '.join(map(str, net.input_shape))}), "
            f"got one probe of shape {net.input_shape}")
    if isinstance(y, (str, bytes)):
        raise TypeError(f"y must be an array of integer class labels, got {type(y).__name__}")
    try:
        yarr = np.asarray(y)
    except Exception as exc:
        raise TypeError(f"y must be an array of integer class labels: {exc}") from None
    if yarr.ndim != 1 or yarr.shape[0] != A.shape[0]:
        raise ValueError(
            f"y must have shape ({A.shape[0]},) to match X, got {yarr.shape}")
    if yarr.dtype.kind == "f":
        if not np.isfinite(yarr).all():
            raise ValueError("y contains NaN or Inf; it must hold integer class labels")
        if not (yarr == np.round(yarr)).all():
            raise ValueError("y must hold integer class labels, got non-integral floats")
    elif yarr.dtype.kind not in "iu":
        raise TypeError(f"y must hold integer class labels, got dtype {yarr.dtype}")
    k = net.n_outputs
    if yarr.size and (yarr.min() < 0 or yarr.max() >= k):
        bad = yarr[(yarr < 0) | (yarr >= k)][0]
        raise ValueError(
            f"y holds a label {bad!r} out of range; labels must be in [0, {k - 1}] "
            f"for a network with {k} outputs")
    return A, yarr.astype(np.int64)


# ---------------------------------------------------------------------------
# Public API.
# ---------------------------------------------------------------------------

@dataclass
class History:
    """Per-epoch training record.

    Attributes
    ----------
    loss : list of float
        Mean softmax cross-entropy of the network at the end of each epoch on
        that epoch's data, in inference mode (dropout off).
    accuracy : list of float
        Fraction of that data classified correctly, same conditions.

    ``history["loss"]`` and ``history["accuracy"]`` work too.
    """

    loss: list = field(default_factory=list)
    accuracy: list = field(default_factory=list)

    def __getitem__(self, key):
        if key not in ("loss", "accuracy"):
            raise KeyError(key)
        return getattr(self, key)

    def keys(self):
        return ("loss", "accuracy")

    def __len__(self):
        return len(self.loss)


class Trainer:
    """Mini-batch SGD with momentum for one network; keeps the velocities.

    Use it directly when every epoch sees fresh data (as ``lrpfast demo``
    does): the momentum carries over between :meth:`epoch` calls.
    :func:`train` is the one-call form for a fixed data set.

    Parameters
    ----------
    net : Network
    batch_size : int, default 24
    lr : float, default 0.01
        Learning rate, > 0.
    momentum : float, default 0.9
        In [0, 1).  The update is ``v = momentum·v - lr·grad; w = w + v``.
    seed : int, numpy.random.Generator or None
        Seeds the shuffling and the dropout masks.
    shuffle : bool, default True
        Shuffle the samples at every epoch.
    """

    def __init__(self, net, *, batch_size=24, lr=0.01, momentum=0.9, seed=None,
                 shuffle=True):
        _check_trainable(net)
        self.net = net
        self.batch_size = check_int(batch_size, "batch_size", low=1)
        self.lr = check_real(lr, "lr", low=0.0, low_inclusive=False)
        self.momentum = check_real(momentum, "momentum", low=0.0)
        if self.momentum >= 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.shuffle = check_bool(shuffle, "shuffle")
        self.rng = check_rng(seed)
        self.history = History()
        self._velocity = [{name: np.zeros_like(p) for name, p in layer.params().items()}
                          for layer in net.layers]

    def evaluate(self, X, y):
        """``(loss, accuracy)`` of the network on ``(X, y)``, inference mode."""
        A, yv = _check_data(self.net, X, y)
        return self._evaluate(A, yv)

    def _evaluate(self, A, y):
        logits = self.net._trace(A)[_logit_index(self.net)]
        loss, _, pred = _softmax_ce(logits, y)
        return loss, float((pred == y).mean())

    def epoch(self, X, y):
        """One pass over ``(X, y)`` in mini-batches; returns ``(loss, accuracy)``.

        Loss and accuracy are measured after the pass, on the same data, in
        inference mode, and appended to :attr:`history`.
        """
        A, yv = _check_data(self.net, X, y)
        return self._epoch(A, yv)

    def _epoch(self, A, yv):
        n = A.shape[0]
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            _, grads, _ = _loss_and_grads(self.net, A[idx], yv[idx], self.rng)
            self._step(grads)
        loss, acc = self._evaluate(A, yv)
        self.history.loss.append(loss)
        self.history.accuracy.append(acc)
        return loss, acc

    def _step(self, grads):
        # Compute every new parameter first and assign only if all are finite,
        # so a diverging step leaves the network as it was.
        new = []
        with np.errstate(over="ignore", invalid="ignore"):
            for k, (layer, g, vel) in enumerate(zip(self.net.layers, grads,
                                                    self._velocity)):
                for name, grad in g.items():
                    v = self.momentum * vel[name] - self.lr * grad
                    w = getattr(layer, name) + v
                    if not (np.isfinite(v).all() and np.isfinite(w).all()):
                        raise FloatingPointError(
                            f"training diverged: non-finite {layer.name}.{name} after "
                            f"{len(self.history)} epoch(s); lower lr (now {self.lr:g})")
                    new.append((k, name, v, w))
        for k, name, v, w in new:
            self._velocity[k][name] = v
            setattr(self.net.layers[k], name, w)


def train(net, X, y, *, epochs, batch_size=24, lr=0.01, momentum=0.9, seed=None,
          shuffle=True, verbose=False, progress=False):
    """Train ``net`` in place with mini-batch SGD, momentum and softmax cross-entropy.

    The loss is the cross-entropy of the softmax of the logits: the input of
    a trailing SoftMax layer (possibly followed by Identity, Flatten or
    Dropout layers), or the network's output when it has none.
    Dropout layers drop (inverted dropout, seeded by ``seed``) during
    training only.  Gradients flow through Dense (all activations),
    ReLU/Tanh/Sigmoid, Identity, Flatten, Dropout, SoftMax and LayerNorm.

    Parameters
    ----------
    net : Network
        Changed in place, only by assigning its parameters.
    X : array-like of shape (B, *net.input_shape)
    y : array-like of int, shape (B,)
        Class labels in ``[0, net.n_outputs)``.
    epochs : int
        Passes over the data, >= 1.
    batch_size : int, default 24
        >= 1; the last batch of an epoch may be smaller.
    lr : float, default 0.01
        Learning rate, > 0.
    momentum : float, default 0.9
        In [0, 1).
    seed : int, numpy.random.Generator or None
        Seeds the shuffling and the dropout masks.
    shuffle : bool, default True
    verbose : bool, default False
        Print ``epoch N  loss=...  train-acc=...`` after every epoch.
    progress : bool, default False
        Show a tqdm progress bar on stderr, updated once per epoch (needs
        ``pip install "lrpfast[progress]"``).

    Returns
    -------
    History
        ``history.loss`` and ``history.accuracy`` (also ``history["loss"]``):
        one value per epoch, measured after the epoch on ``(X, y)`` with
        dropout off.

    Raises
    ------
    FloatingPointError
        If an update makes a parameter non-finite; the network keeps its
        parameters from before that update.

    Examples
    --------
    >>> X, y = lf.datasets.blobs(240, noise=0.1, seed=0)
    >>> hist = lf.train(net, X, y, epochs=20, seed=0)
    >>> hist.accuracy[-1]
    1.0
    """
    trainer = Trainer(net, batch_size=batch_size, lr=lr, momentum=momentum,
                      seed=seed, shuffle=shuffle)
    epochs = check_int(epochs, "epochs", low=1)
    verbose = check_bool(verbose, "verbose")
    A, yv = _check_data(net, X, y)
    with progress_bar(check_bool(progress, "progress"), epochs, "train", "epoch") as bar:
        for n in range(1, epochs + 1):
            loss, acc = trainer._epoch(A, yv)
            if verbose:
                print(f"epoch {n}  loss={loss:.4f}  train-acc={acc:.3f}")
            bar.update(1)
    return trainer.history
