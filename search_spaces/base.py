"""Typed, validated, JSON round-tripping search spaces over ``TrainConfig`` fields.

    space = get_space("kl_boundary")
    space.validate_against(load_preset("miniworld"))               # fail fast, before Ray starts
    tuner = tune.Tuner(..., param_space=space.tune_param_space("miniworld"))
    overrides = space.trial_overrides("miniworld", trial_config)   # inside a trial -> cfg.with_overrides

A space holds one ``Family`` per preset family, because the mini-world's coefficient scale differs from a
7B model's: ``miniworld`` (the miniworld and miniworld-small presets) and ``real`` (every other preset).
A family is either sampled (``params`` drawn by an Optuna sampler, ``num_samples`` trials) or a grid
(``grid`` points, one trial each); ``fixed`` overrides apply to every trial of the family. ``kl_only``
params replace the same-named ones for a preset whose retain loss is KL only (``retain_l2=False``), where
``beta_kl`` scales the whole retain loss and 0 would switch it off.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from difflib import get_close_matches
from typing import Any

from search_spaces.facts import DEFAULT_DELTA, OBJECTIVE_MODES
from trainables.config import MINIWORLD_MODELS, ConfigError, TrainConfig
from trainables.presets import load_preset

KINDS = ("loguniform", "uniform", "choice")
SAMPLERS = ("boundary", "tpe", "nsga2", "gp", "grid")
FAMILIES = ("miniworld", "real")
MODES = ("min", "max")
GRID_KEY = "point"  # a grid space's one Tune parameter: tune.grid_search over its points
TRAIN_FIELDS = frozenset(f.name for f in fields(TrainConfig) if f.init)


def family_of(preset: str | TrainConfig) -> str:
    """``miniworld`` for a preset name or resolved config on a mini-world model, else ``real``."""
    cfg = load_preset(preset) if isinstance(preset, str) else preset
    return "miniworld" if cfg.model in MINIWORLD_MODELS else "real"


class UnknownSpaceError(ValueError):
    """A search-space name that is not registered; the message lists the valid names."""

    def __init__(self, name: str, valid: list[str]) -> None:
        super().__init__(f"unknown search space {name!r}; choose one of: {', '.join(sorted(valid))}")


@dataclass(frozen=True)
class Param:
    """One searched ``TrainConfig`` field: ``loguniform`` / ``uniform`` over [low, high], or a ``choice``."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    values: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        where = f"param {self.name!r}"
        if self.kind not in KINDS:
            raise ValueError(f"{where}: kind must be one of {KINDS} (got {self.kind!r})")
        if self.kind == "choice":
            if not self.values or self.low is not None or self.high is not None:
                raise ValueError(f"{where}: a choice needs non-empty values=(...) and no low/high")
            return
        if self.values or self.low is None or self.high is None:
            raise ValueError(f"{where}: a {self.kind} range needs low and high, and no values")
        if not self.low < self.high:
            raise ValueError(f"{where}: needs low < high (got {self.low}, {self.high})")
        if self.kind == "loguniform" and self.low <= 0:
            raise ValueError(f"{where}: loguniform needs low > 0 (got {self.low}); use uniform to include 0")

    def endpoints(self) -> tuple[Any, ...]:
        """The extreme values a trial can get: (low, high), or every choice."""
        return self.values if self.kind == "choice" else (self.low, self.high)

    def __str__(self) -> str:
        if self.kind == "choice":
            return f"{self.name}~choice{list(self.values)}"
        return f"{self.name}~{self.kind}({self.low:g}, {self.high:g})"

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if k == "values" else v for k, v in asdict(self).items() if v not in (None, ())}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Param:
        return cls(**{**d, "values": tuple(d.get("values", ()))})


@dataclass(frozen=True)
class Family:
    """What a space searches for one preset family; checked by the ``SearchSpace`` that holds it."""

    params: tuple[Param, ...] = ()
    grid: tuple[dict[str, Any], ...] = ()
    fixed: dict[str, Any] = field(default_factory=dict)
    num_samples: int = 0  # sampled families: trials to draw; grid families: 0 (one trial per point)
    kl_only: tuple[Param, ...] = ()  # replace the same-named params when the retain loss is KL only

    def to_dict(self) -> dict[str, Any]:
        return {"params": [p.to_dict() for p in self.params], "grid": [dict(p) for p in self.grid],
                "fixed": dict(self.fixed), "num_samples": self.num_samples,
                "kl_only": [p.to_dict() for p in self.kl_only]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Family:
        return cls(params=tuple(Param.from_dict(p) for p in d.get("params", ())),
                   grid=tuple(dict(p) for p in d.get("grid", ())), fixed=dict(d.get("fixed", {})),
                   num_samples=int(d.get("num_samples", 0)),
                   kl_only=tuple(Param.from_dict(p) for p in d.get("kl_only", ())))


@dataclass(frozen=True)
class Boundary:
    """Where a space's harmless region ends, as the boundary sampler, stopping rule and report read it.

        Boundary(along="remove_coef", ratio_to="retain_coef", slice_by="beta_kl")

    The boundary is the value of ``along`` where P(retain drop <= delta) crosses 0.5 with every other param
    held (at the trials' median), stated as ``along / ratio_to`` when ``ratio_to`` is set (both log-scaled:
    the GP then models log(along / ratio_to), the coordinate that sets the boundary), and once per low /
    middle / high value of ``slice_by`` when set.
    """

    along: str
    ratio_to: str | None = None
    slice_by: str | None = None

    def names(self) -> tuple[str, ...]:
        return tuple(n for n in (self.along, self.ratio_to, self.slice_by) if n)

    def label(self) -> str:
        """``remove/retain`` or ``remove_coef``: how the boundary's value is named in text."""
        if self.ratio_to is None:
            return self.along
        return f"{self.along.removesuffix('_coef')}/{self.ratio_to.removesuffix('_coef')}"

    def position(self, params: Mapping[str, Any]) -> float | None:
        """Where a point sits along the boundary, in ``label()`` units (``along / ratio_to`` or ``along``); None
        when it lacks a positive number there."""
        values = [params.get(n) for n in (self.along, self.ratio_to) if n]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                   for v in values):
            return None
        return float(values[0]) / float(values[1]) if self.ratio_to else float(values[0])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Boundary:
        return cls(**d)


@dataclass(frozen=True)
class SearchSpace:
    """A named search: per-family params or grid points, the sampler, and the objectives it optimises.

    ``constraint_delta`` is the largest tolerated retain-accuracy drop (a fraction; ``DEFAULT_DELTA`` = 2 points).
    ``boundary`` says how the harmless boundary is read; the boundary sampler needs it.
    """

    name: str
    description: str  # one line, shown by ``--list-spaces``
    sampler: str  # boundary | tpe | nsga2 | gp (Optuna; tuner.orchestration.samplers) or grid
    families: dict[str, Family]
    objectives: tuple[tuple[str, str], ...] = tuple(OBJECTIVE_MODES.items())  # (metric, mode), in objective order
    constraint_delta: float = DEFAULT_DELTA
    boundary: Boundary | None = None

    def __post_init__(self) -> None:
        self._check(self.name.isidentifier(), "the name must be a Python identifier (it is the module name)")
        self._check(bool(self.description) and "\n" not in self.description, "needs a one-line description")
        self._check(self.sampler in SAMPLERS, f"sampler must be one of {SAMPLERS} (got {self.sampler!r})")
        self._check(sorted(self.families) == sorted(FAMILIES), f"needs exactly the families {FAMILIES}")
        self._check(bool(self.objectives) and all(mode in MODES for _, mode in self.objectives),
                    f"objectives must be (metric, mode) pairs with mode in {MODES}")
        self._check(0 < self.constraint_delta < 1, "constraint_delta must be a fraction in (0, 1)")
        self._check(self.sampler != "boundary" or self.boundary is not None,
                    'sampler="boundary" needs boundary=Boundary(along=..., ratio_to=..., slice_by=...)')
        for name, fam in self.families.items():
            where = f"family {name!r}"
            if self.boundary is not None:
                self._check_boundary(where, fam)
            if self.sampler == "grid":
                self._check(bool(fam.grid) and not fam.params and not fam.num_samples,
                            f"{where}: a grid space needs grid points, no params and num_samples 0")
            else:
                self._check(bool(fam.params) and not fam.grid and fam.num_samples > 0,
                            f"{where}: a sampled space needs params, no grid and num_samples > 0")
            searched = [p.name for p in fam.params] + sorted({k for point in fam.grid for k in point})
            self._check(len(set(searched)) == len(searched), f"{where}: a param is listed twice")
            self._check(not set(searched) & set(fam.fixed), f"{where}: a key is both searched and fixed")
            self._check({p.name for p in fam.kl_only} <= {p.name for p in fam.params},
                        f"{where}: kl_only may only replace searched params")

    def _check_boundary(self, where: str, fam: Family) -> None:
        """Every boundary name is a searched param of ``fam``; a ratio's two params are log-scaled ranges."""
        kinds = {p.name: p.kind for p in (*fam.params, *fam.kl_only)}
        b = self.boundary
        for role, name in (("along", b.along), ("ratio_to", b.ratio_to), ("slice_by", b.slice_by)):
            self._check(name is None or name in kinds,
                        f"{where}: boundary {role}={name!r} is not a searched param ({', '.join(kinds) or 'none'})")
        self._check(b.along not in (b.ratio_to, b.slice_by) and (b.slice_by is None or b.slice_by != b.ratio_to),
                    f"{where}: boundary along, ratio_to and slice_by must be different params")
        self._check(kinds[b.along] != "choice" and (b.slice_by is None or kinds[b.slice_by] != "choice"),
                    f"{where}: boundary along / slice_by must be ranges, not choices")
        self._check(b.ratio_to is None or kinds[b.along] == kinds[b.ratio_to] == "loguniform",
                    f"{where}: a boundary ratio {b.along}/{b.ratio_to} needs both params loguniform")

    # --- what a preset gets ----------------------------------------------------------------------------------
    def family(self, preset: str | TrainConfig) -> Family:
        return self.families[family_of(preset)]

    def params_for(self, preset: str | TrainConfig) -> tuple[Param, ...]:
        """The family's params, with its ``kl_only`` ones when the preset's retain loss is KL only."""
        cfg = load_preset(preset) if isinstance(preset, str) else preset
        family = self.family(cfg)
        swap = {} if cfg.retain_l2 else {p.name: p for p in family.kl_only}
        return tuple(swap.get(p.name, p) for p in family.params)

    def fixed_for(self, preset: str | TrainConfig) -> dict[str, Any]:
        return dict(self.family(preset).fixed)

    def points_for(self, preset: str | TrainConfig) -> tuple[dict[str, Any], ...]:
        return tuple(dict(point) for point in self.family(preset).grid)

    def num_samples_for(self, preset: str | TrainConfig) -> int:
        """Trials in a full search: ``num_samples`` of a sampled family, the number of points of a grid."""
        fam = self.family(preset)
        return fam.num_samples or len(fam.grid)

    def tune_param_space(self, preset: str | TrainConfig) -> dict[str, Any]:
        """Ray Tune domains for the params; a grid is ``{"point": tune.grid_search(points)}``.

        Tune runs a grid once per sample, so pass ``num_samples=1`` with a grid. ``fixed`` is not included:
        ``trial_overrides`` adds it.
        """
        from ray import tune  # deferred: importing Ray takes seconds, and --list-spaces does not need it

        if self.sampler == "grid":
            return {GRID_KEY: tune.grid_search(list(self.points_for(preset)))}
        ranges = {"loguniform": tune.loguniform, "uniform": tune.uniform}
        return {p.name: tune.choice(list(p.values)) if p.kind == "choice" else ranges[p.kind](p.low, p.high)
                for p in self.params_for(preset)}

    def trial_overrides(self, preset: str | TrainConfig, trial_config: dict[str, Any]) -> dict[str, Any]:
        """One trial's ``TrainConfig`` overrides: ``fixed`` plus the Tune config's sampled values or grid point."""
        if self.sampler == "grid":
            searched = dict(trial_config[GRID_KEY])
        else:
            searched = {p.name: trial_config[p.name] for p in self.params_for(preset)}
        return {**self.fixed_for(preset), **searched}

    # --- validation --------------------------------------------------------------------------------------------
    def validate_against(self, train_config: TrainConfig) -> None:
        """Fail fast, before anything starts: every key names a ``TrainConfig`` field, and ``fixed`` plus
        each range endpoint, choice or grid point gives a valid config when applied to ``train_config``."""
        family = family_of(train_config)
        fam = self.families[family]
        keys = [p.name for p in fam.params] + list(fam.fixed) + [k for point in fam.grid for k in point]
        for key in keys:
            if key not in TRAIN_FIELDS:
                close = get_close_matches(key, TRAIN_FIELDS, n=1)
                fix = f"did you mean {close[0]!r}?" if close else "see trainables/config.py for the fields"
                raise self._error(f"family {family!r}: {key!r} is not a TrainConfig field; {fix}")
        checks = [({}, "change the fixed overrides")]
        checks += [({p.name: v}, f"change param {p.name!r}'s {'values' if p.kind == 'choice' else 'range'}")
                   for p in fam.params for v in p.endpoints()]
        checks += [(point, "change that grid point") for point in fam.grid]
        for searched, fix in checks:
            try:
                train_config.with_overrides({**fam.fixed, **searched})
            except ConfigError as err:
                raise self._error(f"family {family!r}: {searched or fam.fixed} gives an invalid {train_config.model} "
                                  f"config ({err}); {fix}") from None

    def _check(self, ok: bool, message: str) -> None:
        if not ok:
            raise self._error(message)

    def _error(self, message: str) -> ValueError:
        return ValueError(f"search space {self.name!r}: {message}")

    # --- JSON round-trip -------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "sampler": self.sampler,
                "families": {name: fam.to_dict() for name, fam in self.families.items()},
                "objectives": [list(o) for o in self.objectives], "constraint_delta": self.constraint_delta,
                "boundary": self.boundary.to_dict() if self.boundary else None}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchSpace:
        return cls(name=d["name"], description=d["description"], sampler=d["sampler"],
                   families={name: Family.from_dict(fam) for name, fam in d["families"].items()},
                   objectives=tuple((metric, mode) for metric, mode in d["objectives"]),
                   constraint_delta=float(d["constraint_delta"]),
                   boundary=Boundary.from_dict(d["boundary"]) if d.get("boundary") else None)

    @classmethod
    def from_json(cls, text: str) -> SearchSpace:
        return cls.from_dict(json.loads(text))
