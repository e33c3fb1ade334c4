"""Optional numba for the vectorised kernels.

Why a wrapper instead of ``@numba.njit`` at import time: the riscv64 board has no numba,
and importing numba costs ~0.5 s that a strategy using only the incremental features
should never pay. A :class:`Kernel` is a plain Python function written in the subset numba
compiles; the first call imports numba and compiles it, or runs the Python function when
numba is missing (``NUMBA_DISABLE_JIT=1`` makes numba itself hand back the Python function).
Numba's default (no ``fastmath``) float semantics are IEEE: the same operations in the same
order give bit-identical results, which the tests check (``Kernel.py_func`` vs the call).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

_numba: Any = None
_numba_checked = False


def _numba_module() -> Any:
    """The numba module, or None when it is not installed (checked once)."""
    global _numba, _numba_checked
    if not _numba_checked:
        _numba_checked = True
        try:
            import numba
        except ImportError:
            _numba = None
        else:
            _numba = numba
    return _numba


def numba_available() -> bool:
    """True when numba is importable (the kernels then run compiled)."""
    return _numba_module() is not None


class Kernel(Generic[P, R]):
    """A numba-compatible function, compiled on first call when numba exists."""

    __slots__ = ("_impl", "py_func")

    def __init__(self, fn: Callable[P, R]) -> None:
        self.py_func = fn
        self._impl: Callable[P, R] | None = None

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        impl = self._impl
        if impl is None:
            impl = self._impl = self._compile()
        return impl(*args, **kwargs)

    def _compile(self) -> Callable[P, R]:
        numba = _numba_module()
        if numba is None:
            return self.py_func
        try:
            compiled: Callable[P, R] = numba.njit(cache=True, nogil=True)(self.py_func)
        except RuntimeError:  # no writable cache location (read-only install): compile each run
            compiled = numba.njit(nogil=True)(self.py_func)
        return compiled


def kernel(fn: Callable[P, R]) -> Kernel[P, R]:
    """Decorator: mark ``fn`` as a kernel (see module doc)."""
    return Kernel(fn)
