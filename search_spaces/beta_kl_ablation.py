"""``beta_kl_ablation``: how much KL to add to the L2 retain term (seed 001).

Short runs at fixed coefficients; the comparison is in the training curves (cb loss, KL, grad norms) as
much as in the final accuracies.
"""

from search_spaces.base import Family, SearchSpace

POINTS = (
    {"beta_kl": 0.0, "kl_temperature": 1.0},
    {"beta_kl": 0.1, "kl_temperature": 1.0},
    {"beta_kl": 0.3, "kl_temperature": 1.0},
    {"beta_kl": 0.5, "kl_temperature": 1.0},
    {"beta_kl": 0.3, "kl_temperature": 2.0},
)

# Seed 001 adds beta_kl * KL on top of the L2 retain, so L2 stays on (deep-ignorance's preset turns it off).
SPACE = SearchSpace(
    name="beta_kl_ablation",
    description="beta_kl in {0, 0.1, 0.3, 0.5} at T 1 plus 0.3 at T 2, short runs: compares cb loss, KL, grad norms",
    sampler="grid",
    families={
        "miniworld": Family(grid=POINTS, fixed={"retain_l2": True, "steps": 30}),
        "real": Family(grid=POINTS, fixed={"retain_l2": True, "steps": 100}),
    },
)
