"""The network: an ordered list of layers with one dtype, forward, save/load."""

from __future__ import annotations

import json
import math
import os
import secrets
import zipfile

import numpy as np

from ._validation import as_float_array, check_dtype
from .layers import LAYER_KINDS, Layer

FORMAT_NAME = "lrpfast-network"
# The newest version this lrpfast reads.  Version 2 added the Affine layer
# (kind "affine"); version 1 files load as they are.  A file is written in the
# lowest version that holds its layers, so older lrpfast reads every network
# it could represent.
FORMAT_VERSION = 2
_KIND_SINCE = {"affine": 2}


class Network:
    """A feed-forward network of dense and element-wise layers.

    Parameters
    ----------
    input_shape : int or tuple of int
        Shape of one probe, any rank: ``(n,)`` for tabular inputs, ``(C, H, W)``
        for image-like ones, ``(T, F)`` for a window of time steps, ...
        Layers see the probe flattened in C order.
    layers : list of Layer
        Applied in order.  Each layer object belongs to one network.
    dtype : {"float32", "float64"}, default "float32"
        The dtype of every parameter and every computation.
    seed : int or None
        Seed of the weight initialisation (He for ReLU layers, Glorot else).

    Examples
    --------
    >>> import lrpfast as lf
    >>> net = lf.Network((1, 6, 6), [lf.Dense(16, "relu"), lf.Dense(2), lf.SoftMax()],
    ...                  seed=0)
    >>> net.forward(np.zeros((1, 6, 6))).shape
    (2,)
    """

    def __init__(self, input_shape, layers, dtype="float32", seed=None):
        self._construct(input_shape, layers, dtype, np.random.default_rng(seed))

    def _construct(self, input_shape, layers, dtype, rng):
        """Validate and build; ``rng=None`` leaves parameters unset (for load)."""
        self.input_shape = _check_shape(input_shape)
        self.dtype = check_dtype(dtype)
        if isinstance(layers, Layer) or not hasattr(layers, "__iter__"):
            raise TypeError(f"layers must be a list of Layer objects, got {layers!r}")
        layers = list(layers)
        if not layers:
            raise ValueError("layers must contain at least one layer, got []")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}] must be a lrpfast Layer, got {layer!r}")
            if layer.input_shape is not None:
                raise ValueError(
                    f"layers[{i}] ({layer.name}) already belongs to a network; "
                    "create a new layer object")
            if sum(layer is other for other in layers) > 1:
                raise ValueError(f"layers[{i}] ({layer.name}) appears more than once")
            _check_custom_layer(i, layer)
        shape = self.input_shape
        for layer in layers:
            shape = layer._build(shape, self.dtype, rng)
        self.layers = tuple(layers)
        self.output_shape = tuple(shape)
        # Fixed at construction (layer shapes never change), read on every explain.
        self._param_layers = tuple(l for l in self.layers if hasattr(l, "_version"))
        for i, layer in enumerate(self.layers):
            if layer.lrp == "passthru" and layer.n_in != layer.n_out:
                raise ValueError(
                    f"layers[{i}] ({layer.name}) has lrp = 'passthru' but changes the "
                    f"size {layer.n_in} -> {layer.n_out}; relevance can pass a layer "
                    "unchanged only when the size stays the same")
        self._n_dense = sum(layer.lrp == "dense" for layer in self.layers)
        self._lrp_blocker = next(
            ((k, l) for k, l in enumerate(self.layers)
             if l.lrp == "skip" and l.n_in != l.n_out), None)

    # -- properties -----------------------------------------------------
    @property
    def n_inputs(self):
        return math.prod(self.input_shape)

    @property
    def n_outputs(self):
        """Number of outputs (classes) of the network."""
        return math.prod(self.output_shape)

    @property
    def dense_layers(self):
        return [layer for layer in self.layers if layer.lrp == "dense"]

    @property
    def version(self):
        """Changes whenever any parameter is assigned (cache key)."""
        return tuple([layer._version for layer in self._param_layers])

    # -- forward --------------------------------------------------------
    def _as_batch(self, x, name="x"):
        """Validate a probe or batch; return ``(flat batch (B, n), single)``."""
        arr = as_float_array(x, name, self.dtype, batch_ndim=len(self.input_shape) + 1)
        nd = len(self.input_shape)
        if arr.shape == self.input_shape:
            return arr.reshape(1, -1), True
        if arr.ndim == nd + 1 and arr.shape[1:] == self.input_shape:
            if arr.shape[0] == 0:
                raise ValueError(f"{name} is an empty batch of shape {arr.shape}")
            return arr.reshape(arr.shape[0], -1), False
        raise ValueError(
            f"{name} must have shape {self.input_shape} or, for a batch, "
            f"(B, {', '.join(map(str, self.input_shape))}); got {arr.shape}")

    def _trace(self, A):
        """Activations at every boundary: ``[a_0 = A, a_1, ..., a_L]`` (flat)."""
        acts = [A]
        for layer in self.layers:
            A = layer._forward(A)
            acts.append(A)
        return acts

    def forward(self, x):
        """Outputs for one probe (``input_shape``) or a batch ``(B, *input_shape)``.

        Returns
        -------
        ndarray of shape ``output_shape`` or ``(B, *output_shape)``
        """
        A, single = self._as_batch(x)
        out = self._trace(A)[-1]
        return out.reshape(self.output_shape) if single else \
            out.reshape((A.shape[0],) + self.output_shape)

    __call__ = forward

    # -- persistence ----------------------------------------------------
    def save(self, path):
        """Write the network to ``path`` (``.npz``) atomically.

        The file holds a JSON header (format name and version, input shape,
        dtype, layer specs) and the parameter arrays; it never holds pickles.
        The version is the lowest that holds the network's layers: 1 without
        :class:`~lrpfast.layers.Affine` layers (readable by every lrpfast), 2
        with them.
        """
        path = os.fspath(path)
        for i, layer in enumerate(self.layers):
            if LAYER_KINDS.get(layer.kind) is not type(layer):
                raise ValueError(
                    f"layers[{i}] ({layer.name}) is a custom {type(layer).__name__} "
                    "layer, which lrpfast.load could not rebuild; only the built-in "
                    f"layers ({', '.join(sorted(LAYER_KINDS))}) can be saved")
        header = {
            "format": FORMAT_NAME,
            "version": max(_KIND_SINCE.get(l.kind, 1) for l in self.layers),
            "input_shape": list(self.input_shape),
            "dtype": self.dtype.name,
            "layers": [{"kind": l.kind, "config": l.get_config()} for l in self.layers],
        }
        arrays = {"__header__": np.frombuffer(json.dumps(header).encode(), np.uint8)}
        for i, layer in enumerate(self.layers):
            for pname, arr in layer.params().items():
                arrays[f"layer{i}.{pname}"] = arr
        fd, tmp = fresh_temp(os.path.dirname(os.path.abspath(path)), ".npz")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def __repr__(self):
        inner = ", ".join(layer.describe() for layer in self.layers)
        return f"Network(input_shape={self.input_shape}, [{inner}], dtype={self.dtype.name})"


def fresh_temp(folder, suffix):
    """``(fd, path)`` of a new, empty file in ``folder``, named to be renamed
    onto the target later (a rename within one folder is atomic).

    Created with mode 0o666, so the umask applies as for any new file.
    """
    while True:
        path = os.path.join(folder, f".lrpfast-{secrets.token_hex(8)}{suffix}.tmp")
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), path
        except FileExistsError:
            continue


def load(path):
    """Load a network written by :meth:`Network.save`.

    Reads format versions 1 and 2 (:data:`FORMAT_VERSION`).  Raises
    ``ValueError`` for a file that is not an ``.npz`` archive at all (text, a
    pickle, an image...), is truncated, is not a lrpfast model, holds pickled
    objects, or has a newer format version.  Nothing in the file is executed.
    """
    spath = os.fspath(path)
    if not os.path.isfile(spath):
        raise FileNotFoundError(f"path: no such model file: {spath!r}")
    # Look at the first bytes before numpy does: for anything that is neither
    # a zip (.npz) nor a .npy, np.load falls back to unpickling, and its
    # "pickled data" error would send the user after the wrong problem.
    with open(spath, "rb") as fh:
        magic = fh.read(6)
    if not magic:
        raise ValueError(f"{spath!r} is empty; it is not an npz or lrpfast model file")
    if not (magic.startswith(b"PK") or magic == b"\x93NUMPY"):
        raise ValueError(
            f"{spath!r} is not an npz or lrpfast model file (it starts with "
            f"{magic!r}, not with the zip signature b'PK' of an .npz archive; "
            "save models with Network.save)")
    try:
        data = np.load(spath, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"{spath!r} is a .npy array, not a lrpfast model file (.npz)")
        with data:
            files = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as exc:
        raise ValueError(f"{spath!r} is not a readable .npz model file ({exc})") from None
    except ValueError as exc:
        if "pickle" in str(exc):   # object arrays: refused, never unpickled
            raise ValueError(f"{spath!r} holds pickled objects; lrpfast model files "
                             "never do, so it is refused") from None
        raise ValueError(f"{spath!r} is not a valid lrpfast model file ({exc})") from None
    raw = files.pop("__header__", None)
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise ValueError(f"{spath!r} is not a lrpfast model file (no header)")
    try:
        header = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{spath!r} has a corrupted header") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ValueError(f"{spath!r} is not a lrpfast model file")
    version = header.get("version")
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"{spath!r} has an invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{spath!r} has format version {version}, newer than this lrpfast "
            f"reads ({FORMAT_VERSION}); upgrade lrpfast")
    try:
        layers = []
        for spec in header["layers"]:
            if _KIND_SINCE.get(spec["kind"], 1) > version:
                raise KeyError(f"layer kind {spec['kind']!r} in a version {version} file")
            cls = LAYER_KINDS[spec["kind"]]
            layers.append(cls(**spec["config"]))
        # Built without initial weights: the stored arrays are checked against
        # the shapes the header implies before anything of that size exists.
        net = Network.__new__(Network)
        net._construct(tuple(header["input_shape"]), layers, header["dtype"], None)
        for i, layer in enumerate(net.layers):
            prefix = f"layer{i}."
            params = {k[len(prefix):]: files.pop(k) for k in list(files)
                      if k.startswith(prefix)}
            if params or layer._param_shapes():
                layer._set_params(params)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{spath!r} has an invalid layer spec ({exc!r})") from None
    if files:
        raise ValueError(f"{spath!r} holds unexpected arrays {sorted(files)}")
    return net


_LRP_MODES = ("dense", "passthru", "skip")


def _check_custom_layer(i, layer):
    """Refuse, when the network is built, a layer that explain could not run."""
    cls = type(layer)
    if layer.lrp not in _LRP_MODES:
        raise ValueError(
            f"layers[{i}] ({layer.name}): lrp must be one of "
            f"{', '.join(repr(m) for m in _LRP_MODES)}, got {layer.lrp!r}")
    if cls._forward is Layer._forward:
        raise TypeError(
            f"layers[{i}] ({layer.name}) is a {cls.__name__} without a forward pass: "
            "a custom Layer subclass must define _forward(self, A), mapping a flat "
            "batch (B, n_in) to (B, n_out), and set lrp = 'passthru' (relevance "
            "passes unchanged) or 'skip' (no LRP rule; reported as SKIPPED)")


def _check_shape(shape):
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"input_shape must be a tuple of ints, got {shape!r}") from None
    if not shape or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
            for s in shape):
        raise ValueError(
            "input_shape must be a non-empty tuple of positive ints, such as (n,), "
            f"(T, F) or (C, H, W), got {shape!r}")
    return tuple(int(s) for s in shape)
