"""The boundary's coordinates in a run: which params the analysis reads, from the run's search space.

    boundary = run_boundary({"space": "kl_boundary"})      # Boundary(along="remove_coef", ratio_to=..., slice_by=...)
    b = restrict(boundary, [t.params for t in trials])    # only the names every trial carries as a number > 0
    b.position(t.params)                                   # remove_coef / retain_coef, or remove_coef without a ratio
    nearest_level(t.params[b.slice_by], levels)            # the slice a trial belongs to

A space that declares no boundary (grid and TPE spaces over the coefficients) is read with ``KL_BOUNDARY``, the
default space's. ``restrict`` drops a ``ratio_to`` or ``slice_by`` the trials do not carry (a grid over
remove_coef alone is read along remove_coef), and ``along`` stays even if absent: then there is no boundary
to fit, which the fit says.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from search_spaces import get_space
from search_spaces.base import Boundary, UnknownSpaceError
from search_spaces.kl_boundary import SPACE as KL_SPACE

KL_BOUNDARY: Boundary = KL_SPACE.boundary


def run_boundary(config: Mapping[str, Any]) -> Boundary:
    """The boundary of the run's space (``run_config.json``'s "space"), else ``KL_BOUNDARY``."""
    name = config.get("space")
    try:
        declared = get_space(name).boundary if name else None
    except UnknownSpaceError:
        declared = None
    return declared or KL_BOUNDARY


def restrict(boundary: Boundary, params: Sequence[Mapping[str, Any]]) -> Boundary:
    """``boundary`` without a ratio_to / slice_by that some trial lacks (or, for ratio_to, has <= 0)."""
    def carried(name: str | None, positive: bool) -> bool:
        return name is not None and all(number(p.get(name), positive) for p in params)

    if not params:
        return boundary
    return replace(boundary, ratio_to=boundary.ratio_to if carried(boundary.ratio_to, True) else None,
                   slice_by=boundary.slice_by if carried(boundary.slice_by, False) else None)


def nearest_level(value: Any, levels: Sequence[float | None]) -> float | None:
    """The level closest to ``value`` (a slice's level); the only level when there is one, None without a value."""
    if len(levels) == 1:
        return levels[0]
    if not number(value, False):
        return None
    return min(levels, key=lambda b: abs(float(b) - float(value)))


def number(v: Any, positive: bool) -> bool:
    """A finite int/float (not bool), > 0 when ``positive``."""
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return ok and (v > 0 or not positive)
