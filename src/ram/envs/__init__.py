"""Environments: the Catch game, registered with gymnasium as ``ram/Catch-v0``."""

import gymnasium

from ram.envs.catch import (
    BatchedCatch,
    CatchEnv,
    CatchRules,
    CatchState,
    draw_initial_state,
    initial_state_for_seed,
    random_policy_catch_rate,
    render_rgb,
    render_screens,
    step_state,
)

CATCH_ID = "ram/Catch-v0"

# Importing twice (or reloading) must not register twice: gymnasium warns on that.
if CATCH_ID not in gymnasium.registry:
    gymnasium.register(id=CATCH_ID, entry_point="ram.envs.catch:CatchEnv")

__all__ = [
    "CATCH_ID",
    "BatchedCatch",
    "CatchEnv",
    "CatchRules",
    "CatchState",
    "draw_initial_state",
    "initial_state_for_seed",
    "random_policy_catch_rate",
    "render_rgb",
    "render_screens",
    "step_state",
]
