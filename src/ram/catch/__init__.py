"""The paper's dynamic environment: a RAM with an LSTM core that learns to play Catch
from the final reward alone (agent.py), its games and evaluation (play.py), and its
REINFORCE trainer (trainer.py)."""
from .agent import (ACTION_NAMES, STEPS, TEST_GAMES, TEST_SEED, CatchAgent, CatchRetina, Rollout, catch_config,
                    catch_loss, loss_terms)
from .play import all_starts, animate_games, catch_rate, evaluate_catch, load_agent, play, seeded_env, start_env
from .trainer import CatchTrainer

__all__ = ["ACTION_NAMES", "STEPS", "TEST_GAMES", "TEST_SEED", "CatchAgent", "CatchRetina", "CatchTrainer",
           "Rollout", "all_starts", "animate_games", "catch_config", "catch_loss", "catch_rate", "evaluate_catch",
           "load_agent", "play", "seeded_env", "start_env", "loss_terms"]
