"""What the trials show about the boundary, slice by slice: the evidence the verdict's boundary lines and next
step are worded from, so neither states more than was sampled.

    for s in boundary_slices(a, scored, baseline):
        s.level, s.kind, s.sampled      # slice_by value, Kind, (position, drop <= delta) of the trials near it

A slice is one level of the fit's ``by_slice`` (one per low / middle / high ``slice_by``; a single slice without
one); a trial belongs to the level nearest its ``slice_by``. Its position is ``Boundary.position``: along / ratio_to
(or along alone). The kinds:

    NOT_SAMPLED  no trial near this level
    BELOW        every trial near it has retain drop <= delta: the boundary lies above the largest sampled
    ABOVE        none has: the boundary lies below the smallest sampled
    PINNED       the fit's estimate lies between a trial with drop <= delta below it and one with drop > delta
                 above it, and its interval is finite and inside the sampled positions
    LOCATED      bracketed as PINNED, the interval not yet inside the sampled positions
    OPEN         both kinds of trial, but the estimate is missing or not bracketed by them
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

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

    @property
    def kind(self) -> Kind:
        if not self.sampled:
            return Kind.NOT_SAMPLED
        if all(ok for _, ok in self.sampled):
            return Kind.BELOW
        if not any(ok for _, ok in self.sampled):
            return Kind.ABOVE
        r = self.estimate
        if r is None or not (self.largest(True, below=r) and self.smallest(False, above=r)):
            return Kind.OPEN
        lo, hi = self.span
        inside = self.interval is not None and all(math.isfinite(x) and lo <= x <= hi for x in self.interval)
        return Kind.PINNED if inside else Kind.LOCATED

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
    """One ``Slice`` per level of the fit (a single one without a fit or without levels)."""
    fit = a.fit
    levels = list(fit.by_slice or ((fit.at_slice, fit.ratio),)) if fit is not None else [(None, None)]
    intervals = {b: (lo, hi) for b, lo, hi in getattr(fit, "intervals", ())}
    if fit is not None and not intervals:
        intervals = {fit.at_slice: tuple(fit.ratio_ci)}
    names = [b for b, _ in levels]
    slice_by = a.boundary.slice_by
    points = [(t, a.boundary.position(t.params)) for t in scored if t.trial_id in a.states]
    near: dict[float | None, list[tuple[float, bool]]] = {b: [] for b in names}
    for t, x in points:
        level = nearest_level(t.params.get(slice_by), names) if slice_by else names[0]
        if x is not None and level in near:
            near[level].append((x, feasible(t, baseline, a.delta)))
    return [Slice(level=b, estimate=r, interval=intervals.get(b), sampled=tuple(sorted(near[b])))
            for b, r in levels]
