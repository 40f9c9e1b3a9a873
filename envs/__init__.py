"""Environments, evaluation and the dataset suite made by rlreg."""
