"""Build a campaign's agent from its configuration, or bring it back from its journalled checkpoint."""

from __future__ import annotations

from typing import Any

from agents.baselines import RandomAgent, SobolAgent
from agents.bayesian import BayesianAgent
from agents.protocol import Optimizer
from agents.space import RecipeSpace
from controller.campaign.config import CampaignConfig

AGENTS: dict[str, Any] = {"bayes": BayesianAgent, "sobol": SobolAgent, "random": RandomAgent}


def make_agent(config: CampaignConfig) -> Optimizer:
    """A fresh agent over the recipe space, with the campaign's fixed parameters and Tc constraint."""
    constraints = [("tc_k", ">=", config.min_tc_k)] if config.min_tc_k is not None else []
    space = RecipeSpace(fixed=config.fixed)
    return AGENTS[config.agent](space, seed=config.seed, constraints=constraints)


def restore_agent(config: CampaignConfig, state: dict[str, Any]) -> Optimizer:
    """The agent as it was at its last journalled checkpoint."""
    return AGENTS[config.agent].restore(state)
