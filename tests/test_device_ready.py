"""GPU readiness, checked on the CPU: the hot paths make every tensor on the model's device
and never read a tensor back to Python, and --compile traces the whole step.

The hot paths are the training step, evaluation, the translated/cluttered generator and
the batched Catch game. They run here with the default device set to "meta": a tensor
made without ``device=`` lands there and fails loudly beside the CPU tensors, where on a
GPU it would be a silent host-to-device copy each step. Reading a tensor back (``.item()``,
``.tolist()``, ``bool()``...) waits for the GPU: it is made to raise.
"""
from __future__ import annotations

import contextlib

import pytest
import torch

from ram.catch import CatchAgent, catch_config, catch_loss
from ram.config import Config
from ram.data import variants
from ram.envs import BatchedCatch
from ram.model import RecurrentAttention, hybrid_loss
from ram.training import Trainer
from ram.training.evaluation import count_correct

SYNCS = ("item", "tolist", "numpy", "__bool__", "__int__", "__float__")


@contextlib.contextmanager
def strict_device(monkeypatch):
    """Tensors made without a device land on meta; reading one back to Python raises."""
    def refuse(name):
        def method(self, *args, **kwargs):
            raise AssertionError(f"host sync in a hot path: Tensor.{name}()")
        return method

    with monkeypatch.context() as m:
        for name in SYNCS:
            m.setattr(torch.Tensor, name, refuse(name))
        torch.set_default_device("meta")
        try:
            yield
        finally:
            torch.set_default_device(None)


def test_strict_device_catches_a_tensor_made_without_device_and_a_sync(monkeypatch):
    x = torch.ones(3)
    with strict_device(monkeypatch):
        with pytest.raises((RuntimeError, NotImplementedError)):
            (x + torch.ones(3)).sum().add_(1).to("cpu").clone().view(-1)[0].add_(torch.zeros(()))
        with pytest.raises(AssertionError, match="host sync"):
            x.sum().item()


@pytest.mark.parametrize("flags", [
    {},
    {"precision": "bf16"},
    {"reinforce_baseline": "greedy", "mean_path_ce": 1.0, "reward": "probability", "ema": 0.99},
    {"reinforce_baseline": "leave_one_out", "paths": 3, "reward": "probability"},
    {"dataset": "cluttered60", "image_size": 40, "num_clutter": 2},
], ids=["default", "bf16", "self-critical", "leave-one-out", "cluttered"])
def test_training_step_and_evaluation_stay_on_the_device(tmp_path, data_dir, monkeypatch, flags):
    flags = {"dataset": "mnist", **flags}
    config = Config.for_dataset(flags.pop("dataset"), data_dir=str(data_dir), device="cpu", train_size=256,
                                batch_size=32, num_epochs=1, num_glimpses=3, hidden_size=32, glimpse_hidden=16,
                                save_dir=str(tmp_path), log_dir=str(tmp_path), plot_dir=str(tmp_path), **flags)
    trainer = Trainer(config, progress=False)
    batches = trainer.data.train_batches(32, torch.Generator().manual_seed(0))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    with strict_device(monkeypatch):
        for x, y in batches:  # draws (and for cluttered, generates) every batch on the device
            terms = trainer.train_step(x, y)
        correct = count_correct(trainer.evaluated, trainer.data.valid_x[:64], trainer.data.valid_y[:64], 32)
    assert terms.device.type == "cpu" and terms.shape == (5,) and correct.device.type == "cpu"
    unchanged = [n for n, p in trainer.model.named_parameters() if torch.equal(before[n], p)]
    assert not unchanged, f"never updated: {unchanged}"


def test_variant_generator_stays_on_the_device(monkeypatch):
    digits = torch.randint(0, 256, (16, 28, 28), dtype=torch.uint8)
    v = variants.Variant(image_size=60, num_clutter=4, clutter_size=8)
    g = torch.Generator().manual_seed(0)
    with strict_device(monkeypatch):
        x = variants.make_batch(digits[:8], digits, v, g)
    assert x.device.type == "cpu" and x.shape == (8, 1, 60, 60)


def test_batched_catch_stays_on_the_device(monkeypatch):
    torch.manual_seed(0)
    agent = CatchAgent(catch_config(hidden_size=32, glimpse_hidden=16))
    env = BatchedCatch(16, "cpu", seed=0)
    with strict_device(monkeypatch):
        env.reset()
        loss, _ = catch_loss(agent(env), 0.01)
        loss.backward()
    assert agent.glimpse_net.fc_rho.weight.grad is not None


def test_compiled_step_is_one_graph_and_equals_eager(tmp_path, data_dir):
    """--compile traces the forward pass and loss as one graph (fullgraph=True fails on any
    break) and computes what eager mode does. The compiled loop draws its own random
    numbers, so the comparison is on the deterministic policy."""
    torch.manual_seed(0)
    model = RecurrentAttention(Config(num_glimpses=3, hidden_size=32, glimpse_hidden=16, num_scales=2, precision="fp32"))
    x = torch.randint(0, 256, (16, 1, 28, 28)).float() / 255
    y = torch.randint(0, 10, (16,))

    def loss_fn(x, y):
        return hybrid_loss(model(x, deterministic=True), y, reward="probability")[0]

    eager = loss_fn(x, y)
    eager.backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    compiled = torch.compile(loss_fn, fullgraph=True)(x, y)
    compiled.backward()
    torch.testing.assert_close(compiled, eager)
    for p, g in zip(model.parameters(), eager_grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)


def test_the_trainers_self_critical_step_compiles_as_one_graph():
    """--compile on the default recipe: the mean and the sampled path in one unroll, the
    whole loss traced without a break. Its noise is the compiler's own, so the check is
    that the loss is finite and reaches every part that it trains."""
    from ram.training.trainer import step_loss
    torch.manual_seed(0)
    config = Config(num_glimpses=3, hidden_size=32, glimpse_hidden=16, precision="fp32", reward="probability",
                    reinforce_baseline="greedy", mean_path_ce=1.0)
    model = RecurrentAttention(config)
    x = torch.randint(0, 256, (16, 1, 28, 28)).float() / 255
    y = torch.randint(0, 10, (16,))
    loss = torch.compile(lambda x, y: step_loss(config, model, model, x, y)[0], fullgraph=True)(x, y)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_the_device_check_script_passes_only_flags_that_exist():
    """The GPU script runs once in a while, on a machine of its own: a renamed flag would
    cost that whole call. Every ram-train flag list after ``--`` in it must parse."""
    import re
    import shlex
    from pathlib import Path

    from ram.commands.train import config_from_args, train_parser

    script = (Path(__file__).resolve().parents[1] / "benchmarks" / "device_check.sh").read_text()
    recipes = re.findall(r"^\s*-- (--dataset[^\\\n]*)", script, flags=re.M)
    assert recipes, "device_check.sh trains no recipe"
    for flags in recipes:
        config = config_from_args(train_parser().parse_args(shlex.split(flags)))
        assert config.device == "cuda"
