"""``alpha_hpo``: seed 000's three HPO variants (RRFA's Jan-24 scripts, docs/benchmarks.md#the-anchors), one trial each.

RRFA's schedule with ``alpha_decay_multiplier`` 2 is the ``paper`` schedule with alpha as both coefficients:
retain = alpha * s/2, remove = alpha * (1 - s/2). The variants' learning rates and layer choices are
model-specific and stay with the preset.
"""

from typing import Any

from search_spaces.base import Family, SearchSpace

VARIANTS = ((2.5, 350), (5.0, 400), (7.5, 450))  # (alpha, steps)

# Every variant ran beta_kl 0.5 at T 1 on top of the L2 retain.
FIXED = {"schedule": "paper", "retain_l2": True, "beta_kl": 0.5, "kl_temperature": 1.0}

# The mini-world trains 60 steps where these runs train 400, so its steps are scaled by 60/400:
# 52.5, 60, 67.5 -> 52, 60, 68 (round() takes halves to the even neighbour).
MINIWORLD_STEP_SCALE = 60 / 400


def _points(step_scale: float) -> tuple[dict[str, Any], ...]:
    return tuple({"retain_coef": alpha, "remove_coef": alpha, "steps": round(steps * step_scale)}
                 for alpha, steps in VARIANTS)


SPACE = SearchSpace(
    name="alpha_hpo",
    description="seed 000's alpha 2.5/5/7.5 with 350/400/450 steps on the paper schedule (mini-world: 52/60/68)",
    sampler="grid",
    families={
        "miniworld": Family(grid=_points(MINIWORLD_STEP_SCALE), fixed=FIXED),
        "real": Family(grid=_points(1.0), fixed=FIXED),
    },
)
