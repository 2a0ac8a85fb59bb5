"""What the trials show about the boundary, slice by slice: the evidence the verdict's boundary lines and next
step are worded from, so neither states more than was sampled.

    for s in boundary_slices(a, scored, baseline):
        s.level, s.kind, s.sampled      # slice_by value, Kind, (position, drop <= delta) of the trials near it

A slice is one level of the fit's ``by_slice`` (one per low / middle / high ``slice_by``; a single slice without
one); a trial belongs to the level nearest its ``slice_by``. Its position is ``Boundary.position``: along / ratio_to
(or along alone). ``pinned`` is the one test of a pinned boundary, which the stopping rule reads too
(``ModelFit.unpinned``):

    lo, hi = the fit's interval, hi clipped to the searched range's end (a slice harmless to the end has hi = end)
    pinned = log10(hi / lo) <= PINNED_WIDTH  and  min(sampled) <= lo * 10**PINNED_WIDTH
                                             and  max(sampled) >= hi / 10**PINNED_WIDTH

The kinds, the first that applies:

    NOT_SAMPLED  no trial near this level
    PINNED       pinned
    BELOW        every trial near it has retain drop <= delta: the boundary lies above the largest sampled
    ABOVE        none has: the boundary lies below the smallest sampled
    LOCATED      the fit's estimate lies between a trial with drop <= delta below it and one with drop > delta
                 above it, but the interval is wider than PINNED_WIDTH or no trial is near one of its ends
    OPEN         both kinds of trial, but the estimate is missing or not bracketed by them
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from search_spaces.base import Boundary
from search_spaces.facts import PINNED_WIDTH
from tuner.analysis.axes import nearest_level
from tuner.analysis.boundary import BoundaryAnalysis, feasible
from tuner.records.schema import TrialRow


class Kind(str, Enum):
    NOT_SAMPLED = "not sampled"
    BELOW = "below the boundary"
    ABOVE = "above the boundary"
    PINNED = "pinned"
    LOCATED = "located"
    OPEN = "open"


@dataclass(frozen=True)
class Slice:
    level: float | None  # slice_by value; None for the single slice of a boundary without slice_by
    estimate: float | None  # the fit's boundary at this level (boundary.label() units)
    interval: tuple[float, float] | None  # the fit's interval there, when it has one
    sampled: tuple[tuple[float, bool], ...]  # (position, retain drop <= delta) of the trials near the level

    end: float | None = None  # the searched range's end at this level (boundary.label() units), when the fit has it

    @property
    def kind(self) -> Kind:
        if not self.sampled:
            return Kind.NOT_SAMPLED
        if self.pinned:
            return Kind.PINNED
        if all(ok for _, ok in self.sampled):
            return Kind.BELOW
        if not any(ok for _, ok in self.sampled):
            return Kind.ABOVE
        r = self.estimate
        if r is None or not (self.largest(True, below=r) and self.smallest(False, above=r)):
            return Kind.OPEN
        return Kind.LOCATED

    @property
    def pinned(self) -> bool:
        """The clipped interval holds the estimate, spans at most PINNED_WIDTH decades, and trials reach within
        PINNED_WIDTH decades of both its ends."""
        if not self.sampled or self.clipped is None:
            return False
        (lo, hi), (first, last), room = self.clipped, self.span, 10**PINNED_WIDTH
        inside = self.estimate is None or lo <= self.estimate <= hi
        return (0 < lo and math.isfinite(hi) and inside and hi <= lo * room
                and first <= lo * room and last >= hi / room)

    @property
    def clipped(self) -> tuple[float, float] | None:
        """The fit's interval with its upper end clipped to the searched range's end."""
        if self.interval is None:
            return None
        lo, hi = self.interval
        return lo, hi if self.end is None else min(hi, self.end)

    @property
    def span(self) -> tuple[float, float]:
        """Smallest and largest sampled position."""
        positions = [x for x, _ in self.sampled]
        return min(positions), max(positions)

    def largest(self, ok: bool, below: float = math.inf) -> float | None:
        """Largest sampled position with drop <= delta == ``ok``, at most ``below``."""
        xs = [x for x, o in self.sampled if o is ok and x <= below]
        return max(xs) if xs else None

    def smallest(self, ok: bool, above: float = -math.inf) -> float | None:
        """Smallest sampled position with drop <= delta == ``ok``, at least ``above``."""
        xs = [x for x, o in self.sampled if o is ok and x >= above]
        return min(xs) if xs else None


def boundary_slices(a: BoundaryAnalysis, scored: Sequence[TrialRow], baseline: TrialRow | None) -> list[Slice]:
    """The report's slices: ``fit_slices`` of the analysis's fit over its scored trials."""
    points = [(t.params, feasible(t, baseline, a.delta)) for t in scored if t.trial_id in a.states]
    return fit_slices(a.fit, a.boundary, points)


def fit_slices(fit: Any, boundary: Boundary, points: Sequence[tuple[Mapping[str, Any], bool]]) -> list[Slice]:
    """One ``Slice`` per level of ``fit`` (a ``BoundaryFit`` or ``ModelFit``; a single slice without a fit or
    without levels), from ``points``: (params, retain drop <= delta) of the trials."""
    levels = list(fit.by_slice or ((fit.at_slice, fit.ratio),)) if fit is not None else [(None, None)]
    intervals = {b: (lo, hi) for b, lo, hi in getattr(fit, "intervals", ())}
    end = getattr(fit, "ratio_range", (None, None))[1]
    if fit is not None and not intervals:
        intervals = {fit.at_slice: tuple(fit.ratio_ci)}
    names = [b for b, _ in levels]
    near: dict[float | None, list[tuple[float, bool]]] = {b: [] for b in names}
    for params, ok in points:
        level = nearest_level(params.get(boundary.slice_by), names) if boundary.slice_by else names[0]
        x = boundary.position(params)
        if x is not None and level in near:
            near[level].append((x, ok))
    return [Slice(level=b, estimate=r, interval=intervals.get(b), sampled=tuple(sorted(near[b])), end=end)
            for b, r in levels]
