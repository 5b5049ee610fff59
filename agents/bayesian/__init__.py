"""The Bayesian-optimisation agent (botorch): see `agents.bayesian.agent`."""

from agents.bayesian.agent import BayesianAgent, warm_up
from agents.bayesian.settings import AcquisitionSettings

__all__ = ["AcquisitionSettings", "BayesianAgent", "warm_up"]
