"""Optimisers that torch does not ship, built by name from a recipe (convzoo.engine.optim.OPTIMIZERS)."""
