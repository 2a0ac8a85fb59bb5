"""Contract tests over every registered search space x every preset, then the error paths."""

from __future__ import annotations

import dataclasses

import pytest
from ray.tune.search.optuna import OptunaSearch
from ray.tune.search.variant_generator import generate_variants

from search_spaces import (
    DEFAULT_SPACE,
    SPACES,
    Boundary,
    Family,
    Param,
    SearchSpace,
    UnknownSpaceError,
    family_of,
    get_space,
)
from search_spaces.registry import describe_spaces
from trainables.presets import PRESETS, load_preset

every_space = pytest.mark.parametrize("space", list(SPACES.values()), ids=list(SPACES))
every_preset = pytest.mark.parametrize("preset", sorted(PRESETS))


@every_space
@every_preset
def test_validates_against_preset(space, preset):
    space.validate_against(load_preset(preset))
    assert space.num_samples_for(preset) > 0


@every_preset
def test_preset_families(preset):
    assert family_of(preset) == ("miniworld" if preset.startswith("miniworld") else "real")


@every_space
def test_json_round_trip(space):
    again = SearchSpace.from_json(space.to_json())
    assert again == space
    assert again.to_json() == space.to_json()


@every_space
@every_preset
def test_tune_trials_apply_to_valid_configs(space, preset):
    """What Tune would hand a trial (a sampled config or an expanded grid point) gives a valid TrainConfig."""
    param_space = space.tune_param_space(preset)
    if space.sampler == "grid":
        trial_configs = [config for _, config in generate_variants(param_space)]
        assert [c["point"] for c in trial_configs] == list(space.points_for(preset))
    else:
        assert set(OptunaSearch.convert_search_space(param_space)) == {p.name for p in space.params_for(preset)}
        trial_configs = [{k: d.sample(random_state=seed) for k, d in param_space.items()} for seed in range(5)]
    base = load_preset(preset)
    for trial_config in trial_configs:
        overrides = space.trial_overrides(preset, trial_config)
        cfg = base.with_overrides(overrides)
        assert {k: getattr(cfg, k) for k in overrides} == overrides


def test_registry_matches_the_cli_names_and_trial_counts():
    trials = {name: (s.num_samples_for("miniworld"), s.num_samples_for("deep-ignorance")) for name, s in SPACES.items()}
    assert trials == {"kl_boundary": (48, 40), "kl_temperature_boundary": (40, 40), "seed_grid": (6, 6),
                      "beta_kl_ablation": (5, 5), "alpha_hpo": (3, 3)}
    assert DEFAULT_SPACE == "kl_boundary" and all(s.name == name for name, s in SPACES.items())
    assert len(describe_spaces().splitlines()) == len(SPACES)


@every_preset
def test_kl_boundary_beta_kl_starts_above_zero_when_the_retain_loss_is_kl_only(preset):
    """At beta_kl = 0 a KL-only retain loss vanishes (every remove damages); an L2 preset keeps 0 (pure L2)."""
    cfg = load_preset(preset)
    (beta,) = [p for p in get_space("kl_boundary").params_for(preset) if p.name == "beta_kl"]
    assert beta.low == (0.0 if cfg.retain_l2 else 0.1) and beta.high == 1.0
    assert get_space("kl_boundary").params_for(load_preset(preset, {"retain_l2": True}))[-1].low == \
        (0.1 if family_of(preset) == "miniworld" else 0.0)


def test_kl_only_may_only_replace_searched_params():
    family = Family(params=(Param("beta_kl", "uniform", 0.0, 1.0),), num_samples=4,
                    kl_only=(Param("retain_coef", "uniform", 0.1, 1.0),))
    with pytest.raises(ValueError, match="kl_only may only replace searched params"):
        SearchSpace("x", "one line", "tpe", {"miniworld": family, "real": family})


def test_seed_points_and_scaled_steps():
    pairs = [(p["retain_coef"], p["remove_coef"]) for p in get_space("seed_grid").points_for("mistral-7b")]
    assert pairs == [(1, 3), (3, 5), (5, 5), (10, 5), (5, 10), (10, 10)]
    alpha = get_space("alpha_hpo")
    assert [p["steps"] for p in alpha.points_for("miniworld-small")] == [52, 60, 68]
    assert [p["steps"] for p in alpha.points_for("llama-3.1-8b-instruct")] == [350, 400, 450]
    assert get_space("beta_kl_ablation").fixed_for("deep-ignorance")["steps"] == 100


def test_unknown_space_lists_valid_names():
    with pytest.raises(UnknownSpaceError, match="unknown search space 'nope'; choose one of: alpha_hpo, ") as err:
        get_space("nope")
    assert isinstance(err.value, ValueError) and "\n" not in str(err.value)


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(kind="loguniform", low=0.0, high=1.0), "low > 0"),
    (dict(kind="uniform", low=2.0, high=1.0), "low < high"),
    (dict(kind="choice", values=()), "non-empty values"),
    (dict(kind="normal", low=0.0, high=1.0), "kind must be one of"),
    (dict(kind="uniform", low=0.0), "needs low and high"),
])
def test_invalid_param_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Param("beta_kl", **kwargs)


BETA = Param("beta_kl", "uniform", 0.0, 1.0)


def _space(sampler: str = "tpe", **family) -> SearchSpace:
    fam = Family(num_samples=0 if sampler == "grid" else 2, **family)
    return SearchSpace(name="bad", description="a test", sampler=sampler, families={"miniworld": fam, "real": fam})


@pytest.mark.parametrize(("space", "message"), [
    (_space(params=(Param("beta_kl", "uniform", -1.0, 1.0),)),
     r"'bad': family 'miniworld': \{'beta_kl': -1.0\} gives an invalid .*must be >= 0.*change param 'beta_kl''s range"),
    (_space(params=(Param("kl_temperature", "choice", values=(1.0, 0.0)),)), "'kl_temperature': must be > 0.*values"),
    (_space(params=(BETA,), fixed={"schedule": "linear"}), "'schedule': must be one of.*change the fixed overrides"),
    (_space("grid", grid=({"lr": -1.0},)), "'lr': must be >= 0.*change that grid point"),
    (_space(params=(Param("beta_k", "uniform", 0.0, 1.0),)), "'beta_k' is not a TrainConfig field; did you mean"),
])
def test_out_of_range_override_rejected(space, message):
    with pytest.raises(ValueError, match=message) as err:
        space.validate_against(load_preset("miniworld"))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("changes", "message"), [
    (dict(sampler="random"), "sampler must be one of"),
    (dict(families={"miniworld": Family(grid=({"beta_kl": 0.1},))}), "needs exactly the families"),
    (dict(sampler="grid"), "a grid space needs grid points"),
    (dict(objectives=(("forget_acc", "down"),)), "mode in"),
])
def test_invalid_space_rejected(changes, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(_space(params=(BETA,)), **changes)


RATIO_PARAMS = (Param("retain_coef", "loguniform", 1.0, 10.0), Param("remove_coef", "loguniform", 1.0, 10.0), BETA)


@pytest.mark.parametrize(("boundary", "message"), [
    (None, 'sampler="boundary" needs boundary='),
    (Boundary("lr"), "boundary along='lr' is not a searched param"),
    (Boundary("remove_coef", slice_by="steps"), "boundary slice_by='steps' is not a searched param"),
    (Boundary("remove_coef", ratio_to="beta_kl"), "needs both params loguniform"),
    (Boundary("remove_coef", ratio_to="retain_coef", slice_by="retain_coef"), "must be different params"),
])
def test_a_boundary_space_must_declare_a_valid_boundary(boundary, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(_space(params=RATIO_PARAMS), sampler="boundary", boundary=boundary)


def test_every_boundary_space_declares_params_it_searches():
    for space in SPACES.values():
        if space.sampler == "boundary":
            for preset in ("miniworld", "deep-ignorance", "llama-3.1-8b-instruct"):
                searched = {p.name for p in space.params_for(preset)}
                assert set(space.boundary.names()) <= searched, (space.name, preset)


def test_boundary_labels_name_the_value_the_report_states():
    assert Boundary("remove_coef", ratio_to="retain_coef", slice_by="beta_kl").label() == "remove/retain"
    assert Boundary("remove_coef", slice_by="kl_temperature").label() == "remove_coef"
