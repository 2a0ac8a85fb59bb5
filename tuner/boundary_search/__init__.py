"""Boundary-seeking search: GP models of retain damage and forgetting, an Optuna sampler, a stopping rule."""

from tuner.boundary_search.sampler import BoundarySampler, BoundarySamplerConfig
from tuner.boundary_search.state import BoundaryState, ModelSpec, Recommendation
from tuner.boundary_search.stopping import StopDecision, StopRule, decide

__all__ = ["BoundarySampler", "BoundarySamplerConfig", "BoundaryState", "ModelSpec",
           "Recommendation", "StopDecision", "StopRule", "decide"]
