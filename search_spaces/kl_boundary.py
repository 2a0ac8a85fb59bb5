"""``kl_boundary`` (default): find where unlearning goes from "no effect" to "retain damage".

The boundary sampler (``tuner.boundary_search``: QMC start, then GP level-set search on "retain drop = delta"
alternating with constrained improvement of forgetting) searches retain_coef and remove_coef on log scales
and beta_kl linearly, and stops by itself once the boundary is pinned; ``num_samples`` is the budget cap.
The target is the lowest forget accuracy with a retain-accuracy drop of at most 2 points; both accuracies
are recorded as two objectives, so the Pareto front is kept too. TPE stays selectable as a space with
``sampler="tpe"``.
"""

from search_spaces.base import Boundary, Family, Param, SearchSpace

# Mini-world grids (docs/benchmarks.md#how-the-world-responds-to-the-coefficients): forgetting is set by the ratio
# remove/retain. Nothing happens at a ratio <= ~0.03 (retain 30, remove 1), forgetting is partial at ~0.1 and complete
# at >= 0.3; retain damage shows at retain 1 with remove 10. These ranges span ratios 0.001..100, which brackets both
# sides with about a factor of 3 to spare (the grids used constant coefficients, the preset ramps them). beta_kl starts
# at 0.1: the mini-world presets' retain loss is KL only (retain_l2=False), so at beta_kl = 0 there is no retain loss at
# all and every remove damages; near 0 the boundary's remove/retain ratio falls with beta_kl (the loss sees retain_coef
# * beta_kl), a singular corner where trials only show damage.
MINIWORLD = Family(
    params=(
        Param("retain_coef", "loguniform", 0.3, 100.0),
        Param("remove_coef", "loguniform", 0.1, 30.0),
        Param("beta_kl", "uniform", 0.1, 1.0),
    ),
    num_samples=48,  # budget cap; the stopping rule usually ends the search earlier
)

# Real models: around the anchors' 5/5 default. Seed 002 saw MMLU damage above remove 15 at retain 5
# (docs/benchmarks.md#the-anchors); RRFA's presets use alpha 5..10 for both coefficients. beta_kl = 0 is the pure-L2
# retain loss of the L2 presets (llama, mistral); a KL-only preset (deep-ignorance) starts at 0.1, as the mini-world.
REAL = Family(
    params=(
        Param("retain_coef", "loguniform", 0.5, 50.0),
        Param("remove_coef", "loguniform", 1.0, 100.0),
        Param("beta_kl", "uniform", 0.0, 1.0),
    ),
    num_samples=40,
    kl_only=(Param("beta_kl", "uniform", 0.1, 1.0),),
)

SPACE = SearchSpace(
    name="kl_boundary",
    description="GP boundary search with a stopping rule: the retain-damage boundary and the lowest forget acc "
                "with retain drop <= 2 pts",
    sampler="boundary",
    families={"miniworld": MINIWORLD, "real": REAL},
    boundary=Boundary(along="remove_coef", ratio_to="retain_coef", slice_by="beta_kl"),
)
