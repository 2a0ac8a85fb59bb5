"""Named, validated search spaces over ``TrainConfig`` fields, one small module each, and their registry."""

from search_spaces.base import Boundary, Family, Param, SearchSpace, UnknownSpaceError, family_of
from search_spaces.registry import DEFAULT_SPACE, SPACES, describe_spaces, get_space

__all__ = ["DEFAULT_SPACE", "SPACES", "Boundary", "Family", "Param", "SearchSpace", "UnknownSpaceError",
           "describe_spaces", "family_of", "get_space"]
