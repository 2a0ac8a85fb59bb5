"""The named search spaces; ``python -m tuner.run --space NAME`` picks one."""

from search_spaces import alpha_hpo, beta_kl_ablation, kl_boundary, kl_temperature_boundary, seed_grid
from search_spaces.base import SearchSpace, UnknownSpaceError

DEFAULT_SPACE = "kl_boundary"
MODULES = (kl_boundary, kl_temperature_boundary, seed_grid, beta_kl_ablation, alpha_hpo)
SPACES: dict[str, SearchSpace] = {m.SPACE.name: m.SPACE for m in MODULES}


def get_space(name: str) -> SearchSpace:
    if name not in SPACES:
        raise UnknownSpaceError(name, list(SPACES))
    return SPACES[name]


def describe_spaces(preset: str = "miniworld") -> str:
    """One line per space: name (* = default), sampler, trials on ``preset``, what it searches, description."""
    lines = []
    for name, space in SPACES.items():
        if space.sampler == "grid":
            keys = dict.fromkeys(k for point in space.points_for(preset) for k in point)
            searched = f"grid over {', '.join(keys)}"
        else:
            searched = ", ".join(str(p) for p in space.params_for(preset))
        label = name + ("*" if name == DEFAULT_SPACE else "")
        lines.append(f"{label:<24} {space.sampler:<5} {space.num_samples_for(preset):>3} trials  {searched}"
                     f"  -- {space.description}")
    return "\n".join(lines)
