"""Playing Catch with the deterministic policy: the validation starts, the seeded test
games, the catch rate, loading an agent from its checkpoint, and the animation of games."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .. import checkpoint
from ..config import Config
from ..envs.catch import BatchedCatch, CatchRules, CatchState, render_rgb
from ..errors import RamError
from ..training.loop import pick_device
from .agent import TEST_GAMES, TEST_SEED, CatchAgent, Rollout


def all_starts(device="cpu") -> CatchState:
    """Every distinct start of the game (1104), each exactly once."""
    bx, dx, px = torch.meshgrid(torch.arange(CatchRules.SIZE), torch.tensor([-1, 1]),
                                torch.arange(CatchRules.MAX_PADDLE_X + 1), indexing="ij")
    bx, dx, px = (v.reshape(-1).to(device) for v in (bx, dx, px))
    return CatchState(bx, torch.zeros_like(bx), dx, px)


def start_env(starts: CatchState) -> BatchedCatch:
    """A BatchedCatch whose games begin at the given starts (already reset)."""
    env = BatchedCatch(len(starts.ball_x), starts.ball_x.device, seed=0)
    env.state, env.t = starts, 0
    return env


def seeded_env(num_games: int = TEST_GAMES, seed: int = TEST_SEED, device="cpu") -> BatchedCatch:
    """Game i starts like ``CatchEnv().reset(seed=seed + i)``: comparable with the gymnasium version."""
    if num_games < 1:
        raise RamError(f"need at least one game to evaluate, got num_games={num_games}")
    env = BatchedCatch(num_games, device, seed=0)
    env.reset(seeds=range(seed, seed + num_games))
    return env


@torch.no_grad()
def play(agent: CatchAgent, env: BatchedCatch, record: bool = False) -> Rollout:
    """The deterministic policy (most likely action, mean location) on a reset env."""
    was_training = agent.training
    agent.eval()
    ro = agent(env, deterministic=True, record=record)
    agent.train(was_training)
    return ro


def catch_rate(agent: CatchAgent, env: BatchedCatch) -> float:
    """Fraction of the env's games the deterministic policy catches."""
    return (play(agent, env).reward == 1).float().mean().item()


def load_agent(path, device="cpu") -> tuple[CatchAgent, Config, dict]:
    """The agent described by the checkpoint's own config, with its weights, in eval mode."""
    ckpt = checkpoint.load(path, map_location=device)
    config = checkpoint.config_of(ckpt, path)
    if config.dataset != "catch":
        raise RamError(f"{path} was trained on --dataset {config.dataset}, not catch; "
                       "pass a checkpoint written by train_catch")
    agent, ckpt = checkpoint.restore(CatchAgent, path, device, ckpt)
    return agent, config, ckpt


def evaluate_catch(model_path, device="", plot_dir="./plots", num_games: int = TEST_GAMES,
                   seed: int = TEST_SEED, num_shown: int = 4) -> dict:
    """Catch rate of the deterministic policy over ``num_games`` seeded games, and a GIF.

    Game i starts like ``CatchEnv().reset(seed=seed + i)``. The GIF shows the first
    ``num_shown`` games side by side with the glimpse boxes on each screen.
    """
    device = pick_device(device)
    agent, config, ckpt = load_agent(model_path, device)
    ro = play(agent, seeded_env(num_games, seed, device), record=True)
    caught = ro.reward == 1
    rate = caught.float().mean().item()
    every = catch_rate(agent, start_env(all_starts(device)))
    print(f"catch rate {100 * rate:.2f}% ({int(caught.sum())}/{num_games} seeded games, seeds "
          f"{seed}..{seed + num_games - 1}, deterministic policy); {100 * every:.2f}% over all 1104 starts; "
          f"epoch {ckpt['epoch']}, {model_path}")
    k = max(1, min(num_shown, num_games))
    gif = animate_games(ro.states[:k], ro.locations[:k], config.glimpse_size, config.num_scales,
                        Path(plot_dir) / "catch_games.gif")
    print(f"pictures: {gif}")
    return {"catch_rate": rate, "all_starts_catch_rate": every, "num_games": num_games, "seed": seed,
            "gif": str(gif)}


def animate_games(states: torch.Tensor, locations: torch.Tensor, glimpse_size: int, num_scales: int,
                  path, scale: int = 8, fps: float = 6) -> Path:
    """An animated GIF of games side by side; frame t shows screen t and the boxes of glimpse t.

    ``states`` (B, T+1, 4) as recorded by a rollout, ``locations`` (B, T, 2). The last frame
    shows where each ball landed and whether it was caught.
    """
    from PIL import Image, ImageDraw, ImageFont

    from ..viz import animate_frames, glimpse_box

    st = states.detach().cpu().numpy()
    locs = locations.detach().cpu().numpy()
    b, frames_n = st.shape[0], st.shape[1]
    size = CatchRules.SIZE
    tile = size * scale
    pad, header = 6, 18
    font = ImageFont.load_default()
    box_colours = [(120, 255, 120), (255, 230, 90), (255, 90, 200)]  # one per scale, finest first
    frames = []
    for t in range(frames_n):
        canvas = Image.new("RGB", (pad + b * (tile + pad), header + tile + pad), (30, 30, 30))
        draw = ImageDraw.Draw(canvas)
        last = t == frames_n - 1
        draw.text((pad, 3), f"step {min(t + 1, frames_n - 1)} / {frames_n - 1}" + ("  (end)" if last else ""),
                  fill=(255, 255, 255), font=font)
        for i in range(b):
            bx, by, _, px = (int(v) for v in st[i, t])
            screen = Image.fromarray(render_rgb(bx, by, px, scale))
            d = ImageDraw.Draw(screen)
            if last:
                caught = px <= bx < px + CatchRules.PADDLE_WIDTH
                d.text((4, 4), "caught" if caught else "missed",
                       fill=(120, 255, 120) if caught else (255, 90, 90), font=font)
            else:
                for k in reversed(range(num_scales)):
                    x0, y0, x1, y1 = glimpse_box(locs[i, t], (size, size), glimpse_size * 2 ** k)
                    d.rectangle((x0 * scale, y0 * scale, x1 * scale - 1, y1 * scale - 1),
                                outline=box_colours[k % len(box_colours)], width=2 if k == 0 else 1)
            x0 = pad + i * (tile + pad)
            canvas.paste(screen, (x0, header))
            # the screen's edge, so that empty screens side by side stay apart
            draw.rectangle((x0 - 1, header - 1, x0 + tile, header + tile), outline=(110, 110, 120))
        frames.append(np.asarray(canvas))
    return animate_frames(frames, path, fps=fps, hold_last=6)
