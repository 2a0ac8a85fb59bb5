"""``kl_temperature_boundary``: where unlearning turns harmful along remove_coef, per KL temperature.

The KL retain loss is T² · KL(teacher_T ‖ student_T) (Hinton et al. 2015): a higher T matches the teacher's
softened distribution over more of the vocabulary. The seeds ran T ∈ {1, 2} at one retain_coef / beta_kl; this
space holds those fixed and asks the boundary sampler how far remove_coef can go at every T in 1..4. The
boundary is read along remove_coef (no ratio: retain_coef is fixed) per low / middle / high kl_temperature.

    python -m tuner.run --space kl_temperature_boundary
"""

from search_spaces.base import Boundary, Family, Param, SearchSpace

TEMPERATURE = Param("kl_temperature", "uniform", 1.0, 4.0)

# Mini-world: at retain_coef 3 and beta_kl 0.5 (the middle of kl_boundary's beta_kl range), kl_boundary's grid puts
# the boundary near remove/retain 1, i.e. remove_coef ~3: the range 0.1..30 brackets it by a decade on each side.
MINIWORLD = Family(
    params=(Param("remove_coef", "loguniform", 0.1, 30.0), TEMPERATURE),
    fixed={"retain_coef": 3.0, "beta_kl": 0.5},
    num_samples=40,  # budget cap; the stopping rule usually ends the search earlier
)

# Real models: the anchors' retain_coef 5 with a KL share of 0.5; remove_coef around their 5 up to seed 002's damage.
REAL = Family(
    params=(Param("remove_coef", "loguniform", 1.0, 100.0), TEMPERATURE),
    fixed={"retain_coef": 5.0, "beta_kl": 0.5},
    num_samples=40,
)

SPACE = SearchSpace(
    name="kl_temperature_boundary",
    description="GP boundary search over remove_coef x kl_temperature at fixed retain_coef / beta_kl: how far "
                "remove can go per T",
    sampler="boundary",
    families={"miniworld": MINIWORLD, "real": REAL},
    boundary=Boundary(along="remove_coef", slice_by="kl_temperature"),
)
