"""The Catch game: the gymnasium and batched versions against each other and against the rules."""

import importlib
import math
import warnings

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import ram.envs
from ram.envs import (
    BatchedCatch,
    CatchEnv,
    CatchRules,
    CatchState,
    initial_state_for_seed,
    random_policy_catch_rate,
    step_state,
)
from ram.envs.catch import _BACKGROUND, _BALL, _PADDLE
from ram.errors import RamError

STEPS = 23


def naive_ball_columns(x: int, dx: int) -> list[int]:
    """The ball's column on rows 0..23, straight from the written rules."""
    columns = [x]
    for _ in range(STEPS):
        if not 0 <= x + dx <= 23:
            dx = -dx
        x += dx
        columns.append(x)
    return columns


def one_game(ball_x: int, ball_dx: int, paddle_x: int) -> CatchState:
    t = lambda v: torch.tensor([v], dtype=torch.int64)  # noqa: E731
    return CatchState(t(ball_x), t(0), t(ball_dx), t(paddle_x))


def test_check_env_passes():
    check_env(gymnasium.make("ram/Catch-v0", render_mode="rgb_array").unwrapped)
    check_env(gymnasium.make("ram/Catch-v0").unwrapped)


def test_make_renders_the_screen_in_colour():
    env = gymnasium.make("ram/Catch-v0", render_mode="rgb_array")
    obs, _ = env.reset(seed=3)
    assert obs.shape == (1, 24, 24) and obs.dtype == np.float32
    for _ in range(5):
        obs, *_ = env.step(1)
    image = env.render()
    assert image.shape == (240, 240, 3) and image.dtype == np.uint8
    small = image[::10, ::10]
    assert (image == np.repeat(np.repeat(small, 10, 0), 10, 1)).all()  # 10x10 blocks
    state = env.unwrapped.state
    bx, by, px = int(state.ball_x[0]), int(state.ball_y[0]), int(state.paddle_x[0])
    assert by == 5
    assert tuple(small[by, bx]) == _BALL
    assert tuple(small[23, px]) == _PADDLE and tuple(small[23, px + 1]) == _PADDLE
    lit = (small != np.array(_BACKGROUND, dtype=np.uint8)).any(axis=2)
    assert (lit == (obs[0] == 1)).all()  # coloured exactly where the observation is 1
    plain = CatchEnv()
    plain.reset(seed=0)
    assert plain.render() is None  # no render_mode, no picture


def test_bad_inputs_raise_ram_error():
    with pytest.raises(RamError, match="render_mode"):
        CatchEnv(render_mode="human")
    env = CatchEnv()
    with pytest.raises(RamError, match="reset"):
        env.step(1)
    env.reset(seed=0)
    with pytest.raises(RamError, match="invalid Catch action"):
        env.step(3)
    batched = BatchedCatch(4, seed=0)
    with pytest.raises(RamError, match="reset"):
        batched.step(torch.ones(4, dtype=torch.int64))
    batched.reset()
    with pytest.raises(RamError, match="int64 actions of shape"):
        batched.step(torch.ones(4, dtype=torch.int32))
    with pytest.raises(RamError, match="int64 actions of shape"):
        batched.step(torch.ones(3, dtype=torch.int64))
    with pytest.raises(RamError, match="one per game"):
        batched.reset(seeds=[1, 2])
    with pytest.raises(RamError, match="not both"):
        BatchedCatch(4, seed=0, generator=torch.Generator())
    with pytest.raises(RamError, match="num_envs"):
        BatchedCatch(0)


def test_importing_again_does_not_register_again():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(ram.envs)
    assert "ram/Catch-v0" in gymnasium.registry


def test_both_versions_agree_frame_by_frame_for_the_same_seeds():
    seeds = list(range(100, 150))
    rng = np.random.default_rng(7)
    actions = rng.integers(0, 3, size=(STEPS, len(seeds)))
    batched = BatchedCatch(len(seeds), seed=0)
    batch_obs = batched.reset(seeds=seeds)
    assert batch_obs.shape == (len(seeds), 1, 24, 24) and batch_obs.dtype == torch.float32
    envs = [CatchEnv() for _ in seeds]
    obs = [env.reset(seed=s)[0] for env, s in zip(envs, seeds)]
    np.testing.assert_array_equal(np.stack(obs), batch_obs.numpy())
    assert all((o.sum() == 3) and (o[0, 0].sum() == 1) and (o[0, 23].sum() == 2) for o in obs)
    for t in range(STEPS):
        batch_obs, batch_reward, batch_done = batched.step(torch.from_numpy(actions[t]))
        results = [env.step(int(a)) for env, a in zip(envs, actions[t])]
        np.testing.assert_array_equal(np.stack([r[0] for r in results]), batch_obs.numpy())
        np.testing.assert_array_equal([r[1] for r in results], batch_reward.numpy())
        np.testing.assert_array_equal([r[2] for r in results], batch_done.numpy())
        assert not any(r[3] for r in results)  # never truncated
        last = t == STEPS - 1
        assert batch_done.all() if last else not batch_done.any()
        if not last:
            assert (batch_reward == 0).all()  # reward only on the last step
    assert set(batch_reward.tolist()) <= {0.0, 1.0}
    with pytest.raises(RamError, match="reset"):
        batched.step(torch.ones(len(seeds), dtype=torch.int64))
    with pytest.raises(RamError, match="reset"):
        envs[0].step(1)


def test_seeded_start_is_the_documented_draw():
    for seed in (0, 1, 12345):
        rng = np.random.default_rng(seed)
        expected = (int(rng.integers(0, 24)), int(rng.integers(0, 2)) * 2 - 1, int(rng.integers(0, 23)))
        assert initial_state_for_seed(seed) == expected
        env = CatchEnv()
        env.reset(seed=seed)
        s = env.state
        assert (int(s.ball_x[0]), int(s.ball_dx[0]), int(s.paddle_x[0]), int(s.ball_y[0])) == expected + (0,)


def test_hand_worked_trajectory_bounces_off_the_right_wall():
    expected = [22, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]
    assert naive_ball_columns(22, +1) == expected
    assert naive_ball_columns(1, -1) == [23 - c for c in expected]  # mirror image off the left wall
    # Paddle starting at every column, always staying: only paddle_x 0 and 1 cover column 1.
    n = CatchRules.MAX_PADDLE_X + 1
    state = CatchState(
        torch.full((n,), 22), torch.zeros(n, dtype=torch.int64), torch.ones(n, dtype=torch.int64), torch.arange(n)
    )
    stay = torch.ones(n, dtype=torch.int64)
    for row in range(1, STEPS + 1):
        state, reward, done = step_state(state, stay)
        assert (state.ball_x == expected[row]).all() and (state.ball_y == row).all()
        assert (state.paddle_x == torch.arange(n)).all()
    assert done.all()
    assert reward.tolist() == [1.0, 1.0] + [0.0] * (n - 2)


def test_paddle_is_clamped_and_moves_one_pixel():
    state = CatchState(*(torch.tensor(v) for v in ([5, 5, 5, 5, 5, 5], [0] * 6, [1] * 6, [0, 0, 22, 22, 10, 10])))
    new, _, _ = step_state(state, torch.tensor([0, 2, 2, 0, 1, 0]))
    assert new.paddle_x.tolist() == [0, 1, 22, 21, 10, 9]


def test_miss_reward_variant_gives_minus_one_on_a_miss_only():
    env = CatchEnv(miss_reward=-1.0)
    env.reset(seed=0)
    env.state = one_game(22, +1, 20)  # ball ends on column 1, the paddle stays on 20-21
    rewards = [env.step(1)[1] for _ in range(STEPS)]
    assert rewards == [0.0] * (STEPS - 1) + [-1.0]
    env.reset(seed=0)
    env.state = one_game(22, +1, 1)
    assert [env.step(1)[1] for _ in range(STEPS)][-1] == 1.0


def _play(env: BatchedCatch, targets: torch.Tensor) -> torch.Tensor:
    """Drive each paddle towards its target left column; return the final rewards."""
    for _ in range(STEPS):
        actions = torch.sign(targets - env.state.paddle_x) + 1
        _, reward, done = env.step(actions)
    assert done.all()
    return reward


def test_an_oracle_always_catches_and_a_runaway_never_does():
    env = BatchedCatch(2000, seed=11)
    env.reset()
    start_x, start_dx = env.state.ball_x.tolist(), env.state.ball_dx.tolist()
    final = torch.tensor([naive_ball_columns(x, dx)[-1] for x, dx in zip(start_x, start_dx)])
    assert set(start_dx) == {-1, 1} and len(set(start_x)) == 24
    assert len(set(env.state.paddle_x.tolist())) == 23 and env.state.paddle_x.max() == 22
    assert (_play(env, final.clamp(max=22)) == 1).all()
    env.reset(seed=11)  # the same games again
    assert env.state.ball_x.tolist() == start_x
    runaway = torch.where(final >= 12, 0, 22)
    assert (_play(env, runaway) == 0).all()


def test_random_play_catches_one_ball_in_twelve():
    # A uniform paddle start stays uniform under random moves (the clamped walk is
    # symmetric), and the ball's 48 equally likely starts land where
    # naive_ball_columns says, so the exact catch rate is:
    cover = lambda c: sum(1 for p in range(23) if p <= c <= p + 1) / 23  # noqa: E731
    theory = np.mean([cover(naive_ball_columns(x, dx)[-1]) for x in range(24) for dx in (-1, 1)])
    assert theory == pytest.approx(1 / 12)
    n = 20000
    rate = random_policy_catch_rate(num_games=n, seed=0)
    assert abs(rate - theory) < 4 * math.sqrt(theory * (1 - theory) / n)
    assert 0.05 < random_policy_catch_rate() < 0.12
    assert random_policy_catch_rate(500, seed=3) == random_policy_catch_rate(500, seed=3)
