"""Learners that regularizers plug into, the training loop, recipes and the rlreg CLI."""

AGENT_KINDS: tuple[str, ...] = ("td3", "dqn", "ppo")
"""The agent kinds a recipe's ``agent:`` may name: the registered agents
(:func:`rlreg.agents.base.agent_names`), listed here so that checking a recipe (``rlreg agents``)
needs no torch (``tests/test_cli_startup.py`` keeps the two equal)."""
