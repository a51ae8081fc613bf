"""Explain a batch file chunk by chunk into ``.npy``/``.npz``, atomically.

The engine of ``lrpfast explain MODEL DATA.npy --out OUT``.  Memory stays at
one chunk whatever the file size: the input is read through a memory map of
the chunk's rows only, and each output is a ``.npy`` file made by
``np.lib.format.open_memmap`` and filled through a map of the chunk's rows,
unmapped after the chunk.  Everything is written to temporary files in the
target folder and renamed over ``OUT`` at the end (``os.replace``), so an
error or Ctrl-C leaves no partial file behind.
"""

from __future__ import annotations

import os
import time
import zipfile

import numpy as np

from ._progress import progress_bar
from ._validation import (check_batch_layout, check_int, check_out_file,
                          first_non_finite_row)
from .explain import _chunk_size, explain_batch
from .network import fresh_temp

__all__ = ["explain_file", "format_summary"]

#: The arrays of an ``.npz`` output, in order (an ``.npy`` output is the first).
OUTPUTS = ("relevance", "explained_class", "logits", "max_residual")


def explain_file(net, data, out, *, chunk_size=None, progress=False, name="DATA", **kwargs):
    """Explain every row of ``data`` and write the results to ``out``.

    Parameters
    ----------
    net : Network
    data : ndarray or numpy.memmap of shape ``(B, *net.input_shape)``
        Typically ``np.load(path, mmap_mode="r")``: only one chunk's rows
        are mapped at a time.
    out : str or os.PathLike
        ``.npy`` (the relevance) or ``.npz`` (relevance, explained_class,
        logits, max_residual).  Its folder must exist.
    chunk_size : int or None
        Rows per chunk (None: the default chunk of :func:`lrpfast.explain_batch`,
        about 16 MB of activations).
    progress : bool
        A tqdm bar on stderr, one update per chunk.
    name : str
        How error messages call ``data``.
    **kwargs
        Passed to :func:`lrpfast.explain_batch` (rule, eps, forced_class, ...).

    Returns
    -------
    dict
        ``rows``, ``counts`` (rows per explained class), ``max_residual``,
        ``seconds``, ``out``.
    """
    t0 = time.perf_counter()
    out = os.fspath(out)
    ext = os.path.splitext(out)[1].lower()
    if ext not in (".npy", ".npz"):
        raise ValueError(f"--out must end with .npy or .npz, got {out!r}")
    folder = check_out_file(out, "--out")
    check_batch_layout(name, data.dtype, data.shape, net.input_shape)
    B = data.shape[0]
    # Default: explain_batch's own chunk (about 16 MB of activations), so that
    # one read, one explain_batch chunk and one write make up the memory.
    rows = _chunk_size(net, None) if chunk_size is None \
        else check_int(chunk_size, "--chunk-size", low=1)
    specs = {"relevance": (net.dtype, net.input_shape), "explained_class": (np.int64, ()),
             "logits": (np.float64, ()), "max_residual": (np.float64, ())}
    names = OUTPUTS if ext == ".npz" else OUTPUTS[:1]
    temps = []
    try:
        files = {}
        for key in names:
            path = _temp(folder, ".npy", temps)
            dtype, trailing = specs[key]
            # Writes the header and sizes the file; rows are filled below.
            header = np.lib.format.open_memmap(path, mode="w+", dtype=dtype,
                                               shape=(B,) + trailing)
            files[key] = (path, header.offset, np.dtype(dtype), trailing)
            del header
        source = _RowReader(data)
        counts = np.zeros(net.n_outputs, np.int64)
        top = 0.0
        with progress_bar(progress, B, "explain", "row") as bar:
            for lo in range(0, B, rows):
                hi = min(B, lo + rows)
                chunk = source.rows(lo, hi)
                try:
                    b = explain_batch(net, chunk, **kwargs)
                except ValueError:
                    found = first_non_finite_row(chunk)
                    if found is None:
                        raise
                    bad, kind = found
                    raise ValueError(f"{name} row {lo + bad} contains {kind}; all values "
                                     "must be finite") from None
                del chunk
                for key, (path, offset, dtype, trailing) in files.items():
                    _write_rows(path, offset, dtype, trailing, lo, hi, getattr(b, key))
                counts += np.bincount(b.explained_class, minlength=net.n_outputs)
                top = max(top, float(b.max_residual.max()))
                bar.update(hi - lo)
        if ext == ".npz":
            final = _temp(folder, ".npz", temps)
            # Stored, not compressed, like np.savez; zip64 for files over 4 GB.
            with zipfile.ZipFile(final, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                for key, (path, *_) in files.items():
                    zf.write(path, f"{key}.npy")
        else:
            final = files["relevance"][0]
        with open(final, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(final, out)
    finally:
        for path in temps:
            if os.path.exists(path):
                os.unlink(path)
    return {"rows": B, "counts": counts, "max_residual": top,
            "seconds": time.perf_counter() - t0, "out": out}


def format_summary(summary, width=100):
    """The one-line summary printed after a run (at most ``width`` columns)."""
    counts = summary["counts"]
    order = [int(k) for k in np.argsort(-counts, kind="stable") if counts[k] > 0]
    parts = [f"{k}: {counts[k]}" for k in order]
    head = f"explained {summary['rows']} rows in {summary['seconds']:.2f} s; classes "
    tail = f"; max residual {summary['max_residual']:.3e}"
    shown = len(parts)
    if len(head + ", ".join(parts) + tail) > width:
        while shown > 1 and len(head + ", ".join(parts[:shown]) + tail) + 12 > width:
            shown -= 1
    classes = ", ".join(parts[:shown])
    if shown < len(parts):
        classes += f" (+{len(parts) - shown} more)"
    return head + classes + tail


# ---------------------------------------------------------------------------

class _RowReader:
    """Rows ``lo:hi`` of an array; of a ``.npy`` memmap, through a map of those rows only.

    A map of the whole file would keep every page read so far resident (and
    counted in the process's memory) until the end.
    """

    def __init__(self, data):
        self.data = data
        self.window = (isinstance(data, np.memmap) and data.flags.c_contiguous
                       and isinstance(getattr(data, "filename", None), str))
        if self.window:
            self.row_bytes = data.dtype.itemsize * int(np.prod(data.shape[1:]))

    def rows(self, lo, hi):
        if not self.window:
            return self.data[lo:hi]
        m = np.memmap(self.data.filename, dtype=self.data.dtype, mode="r",
                      offset=self.data.offset + lo * self.row_bytes,
                      shape=(hi - lo,) + self.data.shape[1:])
        return np.array(m)      # a copy; the map closes with m


def _write_rows(path, offset, dtype, trailing, lo, hi, values):
    row_bytes = dtype.itemsize * int(np.prod(trailing, dtype=np.int64))
    m = np.memmap(path, dtype=dtype, mode="r+", offset=offset + lo * row_bytes,
                  shape=(hi - lo,) + trailing)
    m[...] = values.reshape((hi - lo,) + trailing)
    del m       # unmapped; the pages reach the disk with the final fsync


def _temp(folder, suffix, temps):
    """A fresh, empty file beside the target (so the final rename is atomic),
    listed in ``temps`` for removal on failure."""
    fd, path = fresh_temp(folder, suffix)
    os.close(fd)
    temps.append(path)
    return path
