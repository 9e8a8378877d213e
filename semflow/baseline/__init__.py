"""Flow estimators that know nothing of semantics: OpenCV wrappers and the DiscreteFlow-style method."""

from semflow.baseline.base import FlowMethod, FlowResult, GivenFlow, GivenFlows, check_pair

__all__ = ["FlowMethod", "FlowResult", "GivenFlow", "GivenFlows", "check_pair"]
