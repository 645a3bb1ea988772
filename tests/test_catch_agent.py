"""The RAM that plays Catch: its gradients, its determinism, that it learns, its checkpoints and GIF."""

import math

import pytest
import torch
from PIL import Image

from ram import checkpoint
from ram.catch import (
    CatchAgent,
    CatchTrainer,
    all_starts,
    catch_config,
    catch_loss,
    catch_rate,
    evaluate_catch,
    load_agent,
    loss_terms,
    play,
    seeded_env,
    start_env,
)
from ram.config import Config
from ram.envs import BatchedCatch, CatchEnv, CatchRules, CatchState
from ram.errors import RamError

STEPS = CatchRules.STEPS


@pytest.fixture(autouse=True)
def _one_thread():
    """The games are small: one thread is fastest, and two fight any other job on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_config(tmp_path=None, **overrides) -> Config:
    """A small agent, quick on a CPU; the same code path as the real one."""
    dirs = {} if tmp_path is None else dict(save_dir=str(tmp_path), log_dir=str(tmp_path), plot_dir=str(tmp_path))
    kw = dict(hidden_size=48, glimpse_hidden=32, batch_size=64, device="cpu", **dirs)
    return catch_config(**{**kw, **overrides})


def grads_of(module: torch.nn.Module) -> list[bool]:
    """For each parameter: whether it received a non-zero gradient."""
    return [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in module.parameters()]


def test_all_starts_are_every_distinct_start_once():
    s = all_starts()
    triples = set(zip(s.ball_x.tolist(), s.ball_dx.tolist(), s.paddle_x.tolist()))
    assert len(s.ball_x) == len(triples) == 24 * 2 * 23
    assert (s.ball_y == 0).all()


def test_reinforce_reaches_every_policy_network_and_baseline_loss_only_the_baseline():
    torch.manual_seed(0)
    agent = CatchAgent(small_config())
    env = BatchedCatch(32, seed=3)
    env.reset()
    reinforce, baseline, _ = loss_terms(agent(env))
    reinforce.backward(retain_graph=True)
    for name in ("actor", "locator", "core", "glimpse_net"):
        assert all(grads_of(getattr(agent, name))), f"REINFORCE did not reach the {name}"
    assert not any(grads_of(agent.baseline)), "REINFORCE must not train the baseline"
    agent.zero_grad(set_to_none=True)
    baseline.backward()
    assert all(grads_of(agent.baseline))
    for name in ("actor", "locator", "core", "glimpse_net"):
        assert not any(grads_of(getattr(agent, name))), f"the baseline MSE leaked into the {name}"


def test_loss_matches_a_naive_per_game_per_step_reference():
    torch.manual_seed(1)
    agent = CatchAgent(small_config())
    env = BatchedCatch(6, seed=4)
    env.reset()
    ro = agent(env)
    reinforce, baseline, entropy = loss_terms(ro)
    n = len(ro.reward)
    d = type(ro)(*[None if x is None else x.detach() for x in ro])  # plain numbers for the reference
    r = b = e = 0.0
    for i in range(n):
        R = float(d.reward[i])
        for t in range(STEPS):
            log_pi = float(d.log_pi_a[i, t]) + (float(d.log_pi_l[i, t]) if t < STEPS - 1 else 0.0)
            r -= log_pi * (R - float(d.baselines[i, t])) / n
            b += (R - float(d.baselines[i, t])) ** 2 / (n * STEPS)
            e += float(d.entropy[i, t]) / n
    assert reinforce.item() == pytest.approx(r, rel=1e-5, abs=1e-6)
    assert baseline.item() == pytest.approx(b, rel=1e-5)
    assert entropy.item() == pytest.approx(e, rel=1e-5)
    total, terms = catch_loss(ro, entropy_weight=0.5)
    assert total.item() == pytest.approx(r + b - 0.5 * e, rel=1e-5, abs=1e-6)
    assert terms["catch"].item() == pytest.approx(float((ro.reward == 1).float().mean()))


def test_rollout_shapes_and_rewards_follow_the_game():
    torch.manual_seed(2)
    agent = CatchAgent(small_config())
    env = seeded_env(10, seed=5)
    ro = play(agent, env, record=True)
    assert ro.log_pi_a.shape == ro.baselines.shape == ro.entropy.shape == ro.actions.shape == (10, STEPS)
    assert ro.log_pi_l.shape == (10, STEPS - 1) and ro.locations.shape == (10, STEPS, 2)
    assert ro.states.shape == (10, STEPS + 1, 4)
    assert (ro.locations[:, 0] == 0).all()  # the first glimpse is at the centre
    assert ro.locations.abs().max() <= 1
    # The recorded game, replayed in the gymnasium version with the same actions, ends the same way.
    for i in range(3):
        game = CatchEnv()
        game.reset(seed=5 + i)
        for t in range(STEPS):
            _, reward, done, _, _ = game.step(int(ro.actions[i, t]))
            s = game.state
            assert [int(s.ball_x), int(s.ball_y), int(s.ball_dx), int(s.paddle_x)] == ro.states[i, t + 1].tolist()
        assert done and reward == float(ro.reward[i])


def test_deterministic_rollout_is_repeatable_and_sampling_is_seeded():
    torch.manual_seed(3)
    agent = CatchAgent(small_config())
    a, b = play(agent, seeded_env(50)), play(agent, seeded_env(50))
    assert torch.equal(a.actions, b.actions) and torch.equal(a.locations, b.locations)
    assert torch.equal(a.reward, b.reward)
    assert a.actions.dtype == torch.int64
    runs = []
    for _ in range(2):
        torch.manual_seed(7)
        runs.append(agent(seeded_env(50)))
    assert torch.equal(runs[0].actions, runs[1].actions) and torch.equal(runs[0].locations, runs[1].locations)
    assert not torch.equal(runs[0].locations, a.locations)  # sampling does move the glimpses


def test_agent_refuses_bad_config_and_unreset_env():
    with pytest.raises(RamError, match="3 actions"):
        CatchAgent(small_config(num_classes=10))
    agent = CatchAgent(small_config())
    with pytest.raises(RamError, match="reset"):
        agent(BatchedCatch(4, seed=0))


def two_starts(n: int) -> CatchState:
    """Half the games drop the ball at the left, half at the right; each needs its own moves.

    Ball at column 2 moving right lands on column 21 (paddle starts at 17); ball at 21
    moving left lands on column 2 (paddle at 4). Only an agent that looks can do both.
    """
    half = n // 2
    ball_x = torch.tensor([2] * half + [21] * half)
    return CatchState(ball_x, torch.zeros_like(ball_x), torch.tensor([1] * half + [-1] * half),
                      torch.tensor([17] * half + [4] * half))


def test_a_few_dozen_updates_learn_from_reward_alone():
    torch.manual_seed(1)
    agent = CatchAgent(small_config())
    optimizer = torch.optim.Adam(agent.parameters(), lr=3e-3)
    rates = []
    for _ in range(30):
        total, terms = catch_loss(agent(start_env(two_starts(64))))
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        rates.append(terms["catch"].item())
    first, last = sum(rates[:5]) / 5, sum(rates[-5:]) / 5
    assert last > first + 0.12, f"sampled catch rate {first:.3f} -> {last:.3f} in 30 updates"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short training run, shared by the checkpoint and evaluation tests."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("catch")
    config = small_config(folder, num_epochs=1, updates_per_epoch=2, batch_size=16)
    trainer = CatchTrainer(config, progress=False)
    trainer.test_games = 50  # the real run tests on 1,000 seeded games
    result = trainer.fit()
    torch.set_num_threads(before)
    return trainer, config, result, folder


def test_checkpoint_round_trip_restores_identical_play(trained):
    trainer, config, result, folder = trained
    path = folder / "catch_latest.pth"
    ckpt = checkpoint.load(path)
    for key in ("model_state_dict", "optimizer_state_dict", "config", "epoch", "valid_accuracy",
                "test_accuracy", "rng_state"):
        assert key in ckpt
    assert ckpt["epoch"] == 1 and ckpt["config"]["dataset"] == "catch"
    assert ckpt["test_accuracy"] == pytest.approx(result["test_acc"])
    assert (folder / "catch_best.pth").is_file() and (folder / "catch_metrics.jsonl").is_file()
    assert (folder / "catch_curves.png").is_file()
    locator = {id(p) for p in trainer.agent.locator.parameters()}
    assert len(trainer.optimizer.param_groups) == 2
    for group in trainer.optimizer.param_groups:  # the location policy learns at policy_lr_scale * lr
        scale = config.policy_lr_scale if any(id(p) in locator for p in group["params"]) else 1.0
        assert group["initial_lr"] == pytest.approx(config.lr * scale)
    agent, loaded_config, _ = load_agent(path)
    assert loaded_config == config
    a, b = play(trainer.agent, start_env(all_starts())), play(agent, start_env(all_starts()))
    assert torch.equal(a.actions, b.actions) and torch.equal(a.locations, b.locations)
    assert ckpt["valid_accuracy"] == pytest.approx(float((b.reward == 1).float().mean()))
    assert math.isfinite(ckpt["test_accuracy"])


def test_resume_continues_exactly(tmp_path):
    straight = CatchTrainer(small_config(tmp_path / "a", num_epochs=2, updates_per_epoch=1, batch_size=16),
                            progress=False)
    straight.test_games = 10
    straight.fit()
    first = CatchTrainer(small_config(tmp_path / "b", num_epochs=1, updates_per_epoch=1, batch_size=16),
                         progress=False)
    first.test_games = 10
    first.fit()
    resumed = CatchTrainer(small_config(tmp_path / "b", num_epochs=2, updates_per_epoch=1, batch_size=16),
                           resume=True, progress=False)
    resumed.test_games = 10
    resumed.fit()
    for p, q in zip(straight.agent.parameters(), resumed.agent.parameters()):
        assert torch.equal(p, q)


def test_evaluate_writes_a_gif_and_reports_the_catch_rate(trained, tmp_path, capsys):
    trainer, _, _, folder = trained
    result = evaluate_catch(folder / "catch_latest.pth", "cpu", tmp_path / "plots", num_games=40, seed=11)
    out = capsys.readouterr().out
    assert "catch rate" in out and "40 seeded games" in out
    assert result["catch_rate"] == pytest.approx(catch_rate(trainer.agent, seeded_env(40, seed=11)))
    gif = Image.open(result["gif"])
    assert gif.n_frames == STEPS + 1 and gif.size[0] > 4 * 24 * 8  # four games side by side


def test_evaluate_refuses_a_classifier_checkpoint(tmp_path):
    config = Config(dataset="mnist")
    checkpoint.save(tmp_path / "m.pth", {"model_state_dict": {}, "config": config.to_dict(), "epoch": 0})
    with pytest.raises(RamError, match="catch"):
        evaluate_catch(tmp_path / "m.pth", "cpu", tmp_path)
