"""The Catch game of the paper's dynamic environment, written once and played two ways.

Rules (``CatchRules`` holds the numbers):

* The screen is 24x24. Row 0 is the top, column 0 the left.
* The ball is one pixel. It starts on row 0 at a uniformly random column with a
  uniformly random horizontal direction ``dx`` in {-1, +1} (never 0, so every
  ball travels diagonally, the paper's "random angle" reduced to the two
  angles a one-pixel-per-row ball can have).
* Each step the ball moves one row down and one column sideways. Wall bounce:
  if ``x + dx`` would leave [0, 23], ``dx`` is reversed first and the ball
  moves by the reversed ``dx``. So a ball at column 22 moving right visits
  22, 23, 22, 21, ...; it never stays in place and never leaves the screen.
* The paddle is 2 pixels wide on row 23. Its state ``paddle_x`` is its left
  column, in [0, 22], so it covers ``paddle_x`` and ``paddle_x + 1``. It starts
  at a uniformly random ``paddle_x`` (so the start gives no hint where to go).
  Action 0 moves it one column left, 1 keeps it, 2 moves it one column right,
  clamped to [0, 22].
* Within a step the paddle moves first, then the ball. After 23 steps the ball
  is on row 23 and the episode ends: reward 1 if the paddle (at its new
  position) covers the ball's column, else ``miss_reward`` (0 by default; the
  paper mentions a -1 variant). Every other step gives reward 0.
* The observation is the screen as float32 in [0, 1] with one channel, shape
  (1, 24, 24) (the package's (C, H, W) image convention): ball and paddle
  pixels are 1, the rest 0. Where the ball lands on the paddle the pixel is 1.

A paddle starting anywhere can reach any column within 22 moves, so every ball is
catchable. ``step_state`` and ``render_screens`` are the single statement of the
rules; ``CatchEnv`` (gymnasium, one game) and ``BatchedCatch`` (torch, many games
on a device) both call them.

Seeding: ``draw_initial_state(rng)`` draws (ball column, direction, paddle column)
in that order from a numpy Generator. ``CatchEnv.reset(seed=s)`` uses gymnasium's
generator seeded with ``s``, which is ``initial_state_for_seed(s)``;
``BatchedCatch.reset(seeds=[...])`` uses the same function per game, so game i
starts exactly like ``CatchEnv().reset(seed=seeds[i])``. ``BatchedCatch.reset()``
without seeds draws all games at once from a torch generator on the device (fast,
for training; not comparable seed by seed with the gymnasium version).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import gymnasium
import numpy as np
import torch
from gymnasium.utils import seeding

from ram.errors import RamError


class CatchRules:
    """The numbers that define the game."""

    SIZE: int = 24  # the screen is SIZE x SIZE
    PADDLE_WIDTH: int = 2
    PADDLE_ROW: int = SIZE - 1
    MAX_PADDLE_X: int = SIZE - PADDLE_WIDTH  # paddle_x (left column) lies in [0, 22]
    STEPS: int = SIZE - 1  # the ball falls from row 0 to row 23 in 23 steps
    NUM_ACTIONS: int = 3  # 0 left, 1 stay, 2 right


class CatchState(NamedTuple):
    """The state of one or many games: int64 tensors of equal shape (N,)."""

    ball_x: torch.Tensor  # column, [0, 23]
    ball_y: torch.Tensor  # row, [0, 23]
    ball_dx: torch.Tensor  # -1 or +1
    paddle_x: torch.Tensor  # left column of the paddle, [0, 22]


def step_state(
    state: CatchState, action: torch.Tensor, miss_reward: float = 0.0
) -> tuple[CatchState, torch.Tensor, torch.Tensor]:
    """Advance every game by one step: the only place the rules of motion live.

    ``action`` is an int64 tensor shaped like the state with values in {0, 1, 2}.
    Returns the new state, the float32 reward and the bool ``done`` (ball on the
    bottom row). Pure tensor ops, so it works for any batch size on any device.
    """
    paddle_x = (state.paddle_x + action - 1).clamp(0, CatchRules.MAX_PADDLE_X)
    next_x = state.ball_x + state.ball_dx
    bounce = (next_x < 0) | (next_x > CatchRules.SIZE - 1)
    ball_dx = torch.where(bounce, -state.ball_dx, state.ball_dx)
    ball_x = state.ball_x + ball_dx
    ball_y = state.ball_y + 1
    done = ball_y >= CatchRules.PADDLE_ROW
    caught = (ball_x >= paddle_x) & (ball_x < paddle_x + CatchRules.PADDLE_WIDTH)
    outcome = torch.where(caught, 1.0, miss_reward)
    reward = torch.where(done, outcome, 0.0).to(torch.float32)
    return CatchState(ball_x, ball_y, ball_dx, paddle_x), reward, done


def render_screens(state: CatchState) -> torch.Tensor:
    """The observation of every game: float32 (N, 1, 24, 24), ball and paddle pixels 1."""
    size = CatchRules.SIZE
    n = state.ball_x.shape[0]
    paddle_start = CatchRules.PADDLE_ROW * size + state.paddle_x
    pixels = torch.stack(
        [state.ball_y * size + state.ball_x]
        + [paddle_start + i for i in range(CatchRules.PADDLE_WIDTH)],
        dim=1,
    )
    screen = torch.zeros(n, size * size, dtype=torch.float32, device=state.ball_x.device)
    screen.scatter_(1, pixels, 1.0)
    return screen.view(n, 1, size, size)


# Colours of the rgb picture: dark background, orange ball drawn over a blue paddle.
_BACKGROUND = (20, 20, 30)
_BALL = (255, 140, 40)
_PADDLE = (70, 150, 255)


def render_rgb(ball_x: int, ball_y: int, paddle_x: int, scale: int = 10) -> np.ndarray:
    """A picture of one game for people: uint8 (24 * scale, 24 * scale, 3)."""
    size = CatchRules.SIZE
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:] = _BACKGROUND
    image[CatchRules.PADDLE_ROW, paddle_x : paddle_x + CatchRules.PADDLE_WIDTH] = _PADDLE
    image[ball_y, ball_x] = _BALL
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def draw_initial_state(rng: np.random.Generator) -> tuple[int, int, int]:
    """(ball column, ball direction, paddle column), drawn in that order from ``rng``."""
    ball_x = int(rng.integers(0, CatchRules.SIZE))
    ball_dx = int(rng.integers(0, 2)) * 2 - 1
    paddle_x = int(rng.integers(0, CatchRules.MAX_PADDLE_X + 1))
    return ball_x, ball_dx, paddle_x


def initial_state_for_seed(seed: int) -> tuple[int, int, int]:
    """The start ``CatchEnv().reset(seed=seed)`` produces: gymnasium's generator for ``seed``."""
    rng, _ = seeding.np_random(seed)
    return draw_initial_state(rng)


def _state_from_starts(starts: Sequence[tuple[int, int, int]], device: torch.device | str) -> CatchState:
    columns = torch.tensor(starts, dtype=torch.int64).reshape(-1, 3).to(device)
    return CatchState(
        ball_x=columns[:, 0].contiguous(),
        ball_y=torch.zeros(columns.shape[0], dtype=torch.int64, device=device),
        ball_dx=columns[:, 1].contiguous(),
        paddle_x=columns[:, 2].contiguous(),
    )


class CatchEnv(gymnasium.Env):
    """One game of Catch with the gymnasium API (registered as ``ram/Catch-v0``).

    Observation: float32 (1, 24, 24) in [0, 1]. Actions: Discrete(3), 0 left,
    1 stay, 2 right. Every episode terminates after exactly 23 steps (never
    truncated). ``render()`` with ``render_mode="rgb_array"`` returns a uint8
    (240, 240, 3) picture. The current state is ``self.state`` (a ``CatchState``
    of one-element tensors).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}

    def __init__(self, render_mode: str | None = None, miss_reward: float = 0.0, render_scale: int = 10):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise RamError(
                f"unsupported render_mode {render_mode!r}; use one of {self.metadata['render_modes']} or None"
            )
        self.render_mode = render_mode
        self.miss_reward = float(miss_reward)
        self.render_scale = int(render_scale)
        size = CatchRules.SIZE
        self.observation_space = gymnasium.spaces.Box(0.0, 1.0, (1, size, size), dtype=np.float32)
        self.action_space = gymnasium.spaces.Discrete(CatchRules.NUM_ACTIONS)
        self.state: CatchState | None = None
        self._done = False

    def _observation(self) -> np.ndarray:
        return render_screens(self.state)[0].numpy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.state = _state_from_starts([draw_initial_state(self.np_random)], "cpu")
        self._done = False
        return self._observation(), {}

    def step(self, action):
        if self.state is None or self._done:
            raise RamError("CatchEnv.step called before reset() or after the episode ended; call reset() first")
        if not self.action_space.contains(action):
            raise RamError(f"invalid Catch action {action!r}; use 0 (left), 1 (stay) or 2 (right)")
        move = torch.tensor([int(action)], dtype=torch.int64)
        self.state, reward, done = step_state(self.state, move, self.miss_reward)
        self._done = bool(done[0])
        return self._observation(), float(reward[0]), self._done, False, {}

    def render(self):
        if self.render_mode != "rgb_array" or self.state is None:
            return None
        s = self.state
        return render_rgb(int(s.ball_x[0]), int(s.ball_y[0]), int(s.paddle_x[0]), self.render_scale)


class BatchedCatch:
    """Many games of Catch stepped together on one device, with tensors only.

    Every game lasts exactly 23 steps, so all games start and end together: the
    23rd ``step`` returns ``done`` all True, and ``reset`` must then be called to
    start new games (stepping further raises). Observations are float32
    (N, 1, 24, 24); rewards float32 (N,); ``done`` bool (N,).

    Random starts come from ``generator`` (a torch Generator on ``device``) or a
    new one seeded with ``seed``. ``reset(seeds=...)`` instead starts game i
    exactly as ``CatchEnv().reset(seed=seeds[i])`` does.

    Actions must be int64 (N,) with values in {0, 1, 2}; values are not checked
    (that would cost a host sync per step).
    """

    def __init__(
        self,
        num_envs: int,
        device: torch.device | str = "cpu",
        seed: int | None = None,
        generator: torch.Generator | None = None,
        miss_reward: float = 0.0,
    ):
        if num_envs < 1:
            raise RamError(f"BatchedCatch needs num_envs >= 1, got {num_envs}")
        if seed is not None and generator is not None:
            raise RamError("BatchedCatch takes a seed or a generator, not both; pass only one")
        self.num_envs = int(num_envs)
        self.device = torch.device(device)
        if generator is None:
            generator = torch.Generator(device=self.device)
            if seed is None:
                generator.seed()
            else:
                generator.manual_seed(seed)
        self.generator = generator
        self.miss_reward = float(miss_reward)
        self.state: CatchState | None = None
        self.t = 0  # steps taken since reset; a Python int, so no device sync is needed

    def reset(self, seed: int | None = None, seeds: Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
        """Start new games; ``seed`` reseeds the generator, ``seeds`` fixes each game's start."""
        if seeds is not None:
            if seed is not None:
                raise RamError("BatchedCatch.reset takes seed or seeds, not both; pass only one")
            seed_list = [int(s) for s in (seeds.tolist() if isinstance(seeds, torch.Tensor) else seeds)]
            if len(seed_list) != self.num_envs:
                raise RamError(f"BatchedCatch.reset got {len(seed_list)} seeds for {self.num_envs} games; pass one per game")
            self.state = _state_from_starts([initial_state_for_seed(s) for s in seed_list], self.device)
        else:
            if seed is not None:
                self.generator.manual_seed(seed)
            n, dev, gen = self.num_envs, self.device, self.generator
            ball_x = torch.randint(0, CatchRules.SIZE, (n,), generator=gen, device=dev)
            ball_dx = torch.randint(0, 2, (n,), generator=gen, device=dev) * 2 - 1
            paddle_x = torch.randint(0, CatchRules.MAX_PADDLE_X + 1, (n,), generator=gen, device=dev)
            self.state = CatchState(ball_x, torch.zeros_like(ball_x), ball_dx, paddle_x)
        self.t = 0
        return render_screens(self.state)

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Move every paddle by ``actions`` (int64 (N,)) and every ball one row."""
        if self.state is None or self.t >= CatchRules.STEPS:
            raise RamError("BatchedCatch.step called before reset() or after the games ended; call reset() first")
        if actions.shape != (self.num_envs,) or actions.dtype != torch.int64:
            raise RamError(
                f"BatchedCatch.step needs int64 actions of shape ({self.num_envs},), "
                f"got {actions.dtype} {tuple(actions.shape)}"
            )
        self.state, reward, done = step_state(self.state, actions.to(self.device), self.miss_reward)
        self.t += 1
        return render_screens(self.state), reward, done


def random_policy_catch_rate(num_games: int = 1000, seed: int = 0) -> float:
    """The fraction of games a uniformly random paddle catches (CPU, reproducible)."""
    env = BatchedCatch(num_games, "cpu", seed=seed)
    env.reset()
    total = torch.zeros(num_games)
    for _ in range(CatchRules.STEPS):
        actions = torch.randint(0, CatchRules.NUM_ACTIONS, (num_games,), generator=env.generator)
        _, reward, _ = env.step(actions)
        total += reward
    return float(total.mean())
