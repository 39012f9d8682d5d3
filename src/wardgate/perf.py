"""Small performance helpers shared by the pipeline stages."""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def no_gc_pauses(fn: Callable[P, R]) -> Callable[P, R]:
    """Run `fn` with the cyclic garbage collector paused.

    Translating and rendering 10,000 routes allocates hundreds of thousands of short-lived,
    acyclic objects; the collector's repeated generation scans cost more than half of render time
    (measured: render 1.2 s -> 0.5 s). Reference counting still frees everything.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()

    return wrapper
