"""Learners that regularizers plug into, the training loop, recipes and the rlreg CLI."""
