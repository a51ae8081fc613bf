"""One progress bar for every long-running entry point (tqdm, optional).

``explain_batch``, ``train`` and the streaming CLI call :func:`progress_bar`
once and then ``bar.update(n)`` once per chunk (or per epoch), so a bar costs
one Python call per chunk and nothing per row.  tqdm is imported only when a
bar is asked for; without it, asking raises one ``ImportError`` naming the
extra that installs it.
"""

from __future__ import annotations

import shutil
import sys

__all__ = ["progress_bar"]

#: Widest bar drawn, so that it fits the 100-column terminal of the reports.
MAX_COLUMNS = 100


class _NoBar:
    """Stands in for a bar when progress is off: every call does nothing."""

    def update(self, n=1):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def progress_bar(enabled, total, desc, unit):
    """A tqdm bar on stderr when ``enabled``, else an object that does nothing.

    Parameters
    ----------
    enabled : bool
        Already validated (``_validation.check_bool``).
    total : int
        Units of work (rows, epochs).
    desc : str
        Label in front of the bar, e.g. ``"explain"``.
    unit : str
        Name of one unit, e.g. ``"row"``.

    Returns
    -------
    tqdm.tqdm or a do-nothing bar
        Both are context managers with ``update(n)`` and ``close()``.

    Raises
    ------
    ImportError
        When ``enabled`` and tqdm is not installed.
    """
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        raise ImportError(
            'progress=True needs tqdm: pip install "lrpfast[progress]"') from None
    # At most MAX_COLUMNS wide (narrower on a narrow terminal); mininterval:
    # redraw at most 10 times a second whatever the chunk rate.
    width = min(MAX_COLUMNS, shutil.get_terminal_size((MAX_COLUMNS, 24)).columns)
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr,
                ncols=width, mininterval=0.1, leave=True, unit_scale=total >= 10_000)
