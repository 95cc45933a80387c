"""One BLAS thread for a block of linear algebra.

OpenBLAS (bundled with numpy's and scipy's wheels) runs a large product or factorisation on
a thread per core, and its threads then spin for a while waiting for more work. Our dense
work is small and bursty (P(best)'s draws; the factorisations behind standard errors and
intervals, dense for a few hundred players and sparse LU above), so the extra threads bought
no wall time and burned a core: at 3,000 players publishing took
116 ms wall and 200 ms CPU with two threads against 119 and 119 with one, and the spinning
ran on into the next ``evaluate`` (``benchmarks/README.md``, "Bookkeeping").
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
from collections.abc import Callable, Iterator

__all__ = ["one_blas_thread"]


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block on one BLAS thread, then restore the BLAS's own setting: OpenBLAS's
    ``*set_num_threads*`` functions of the libraries this process has loaded (numpy's and
    scipy's wheels bundle OpenBLAS) when found, else ``threadpoolctl`` when installed (other
    BLAS builds), else nothing.

    Cheap when it matters: the dense solves of small fits run it at every Newton step, and
    ``threadpoolctl``'s search of the loaded libraries (0.7 ms a time) made the
    HPO-efficiency benchmark's fits 26% slower; the OpenBLAS functions cost microseconds,
    and nothing is set when every BLAS already runs one thread.

    Example:
        >>> import numpy as np
        >>> with one_blas_thread():
        ...     float(np.ones((2, 2)) @ np.ones(2) @ np.ones(2))
        4.0
    """
    controls = _openblas_controls()
    if not controls:
        try:
            from threadpoolctl import threadpool_limits  # type: ignore[import-not-found, import-untyped, unused-ignore]
        except ImportError:
            threadpool_limits = None
        if threadpool_limits is None:
            yield
            return
        with threadpool_limits(limits=1, user_api="blas"):
            yield
        return
    before = [get() for get, _ in controls]
    if all(threads == 1 for threads in before):
        yield
        return
    for _, set_threads in controls:
        set_threads(1)
    try:
        yield
    finally:
        for (_, set_threads), threads in zip(controls, before, strict=True):
            set_threads(threads)


_Control = tuple[Callable[[], int], Callable[[int], None]]
# OpenBLAS's thread functions by build: plain, 64-bit integers (numpy's and scipy's wheels).
_OPENBLAS_NAMES = ("openblas", "scipy_openblas", "openblas64_", "scipy_openblas64_")


@functools.cache
def _openblas_controls() -> tuple[_Control, ...]:
    """(get, set) thread-count functions of each OpenBLAS loaded in this process, found in
    ``/proc/self/maps`` (Linux); empty elsewhere. Cached: numpy loads its BLAS on import,
    and scipy's is loaded here first."""
    import scipy.linalg  # noqa: F401 - scipy's own OpenBLAS, loaded before the search

    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower()})
    except OSError:
        return ()
    controls = []
    for path in paths:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _OPENBLAS_NAMES:
            stem = name.removesuffix("64_")
            suffix = "64_" if name.endswith("64_") else ""
            getter = getattr(library, f"{stem}_get_num_threads{suffix}", None)
            setter = getattr(library, f"{stem}_set_num_threads{suffix}", None)
            if getter is not None and setter is not None:
                getter.restype, setter.restype = ctypes.c_int, None
                setter.argtypes = [ctypes.c_int]
                controls.append((getter, setter))
                break
    return tuple(controls)
