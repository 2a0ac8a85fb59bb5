"""``seed_grid``: the six retain_coef x remove_coef points of seed 002's KL-retain table, one trial each.

The points are EleutherAI's ``hp_tune_kl_loss.py`` grid (docs/benchmarks.md#the-anchors).
"""

from search_spaces.base import Family, SearchSpace

POINTS = tuple({"retain_coef": retain, "remove_coef": remove}
               for retain, remove in ((1.0, 3.0), (3.0, 5.0), (5.0, 5.0), (10.0, 5.0), (5.0, 10.0), (10.0, 10.0)))

# Seed 002's retain term is KL only, and its coefficients mean what they do under the eleuther ramp
# (the Llama / Mistral presets default to the paper schedule).
FIXED = {"retain_l2": False, "beta_kl": 1.0, "schedule": "eleuther"}

GRID = Family(grid=POINTS, fixed=FIXED)

SPACE = SearchSpace(
    name="seed_grid",
    description="seed 002's six retain_coef x remove_coef points with KL-only retain, one trial each",
    sampler="grid",
    families={"miniworld": GRID, "real": GRID},
)
