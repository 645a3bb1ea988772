"""Data-parallel training: two gloo processes on the CPU train like one process.

The two-process test spawns workers that join a process group through the same
environment variables torchrun sets, wrap the RAM with ``distributed.wrap`` and take
optimizer steps on their half of a fixed batch. Their weights must stay identical to
each other and equal those of one process stepping on the whole batch.

For that comparison the location samples must not depend on how the batch is split.
The policy draws its exploration noise with ``torch.randn_like``; here it is replaced
by a table holding one noise vector per (step, glimpse, sample), and each rank reads
its own samples' rows. The REINFORCE term then has a real gradient (unlike the
deterministic policy, whose score has zero gradient at the mean), so all three loss
terms are checked.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp

from ram.training import distributed
from ram.config import Config
from ram.errors import RamError
from ram.model.losses import hybrid_loss
from ram.model import RecurrentAttention
from ram.training.trainer import step_loss

WORLD = 2
LOCAL_BATCH = 8
STEPS = 3
# float32: the comparison with one process is to float rounding, which bfloat16 products exceed
CONFIG = dict(hidden_size=32, glimpse_hidden=16, num_glimpses=3, glimpse_size=8, std=0.2, precision="fp32")
SELF_CRITICAL = Config(reward="probability", reinforce_baseline="greedy", mean_path_ce=0.5, **CONFIG)
DIST_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def fixed_batch():
    g = torch.Generator().manual_seed(7)
    x = torch.rand(WORLD * LOCAL_BATCH, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (WORLD * LOCAL_BATCH,), generator=g)
    # one noise vector per (step, chosen location, sample): independent of the split
    noise = torch.randn(STEPS, CONFIG["num_glimpses"] - 1, WORLD * LOCAL_BATCH, 2, generator=g)
    return x, y, noise


@contextlib.contextmanager
def table_noise(noise: torch.Tensor):
    """Make torch.randn_like return noise[step, glimpse] in call order, then restore it."""
    rows = noise.flatten(0, 1)
    calls = iter(range(len(rows)))
    original = torch.randn_like

    def fake(t, **kwargs):
        out = rows[next(calls)]
        assert out.shape == t.shape, "the location policy drew noise of an unexpected shape"
        return out.to(t)

    torch.randn_like = fake
    try:
        yield
    finally:
        torch.randn_like = original


def sgd_steps(net, model, x, y, noise):
    """STEPS steps of SGD with momentum (not Adam: its normalisation would magnify the
    float rounding of near-zero gradients into visible differences), each the trainer's
    own loss (``step_loss``) under ``--reward probability --reinforce_baseline greedy
    --mean_path_ce``: the mean path and the sampled path in one forward through DDP, one
    backward. (The 0/1 reward would leave REINFORCE no gradient here: both paths of an
    untrained model are mostly wrong.)"""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with table_noise(noise):
        for _ in range(STEPS):
            loss, _ = step_loss(SELF_CRITICAL, model, net, x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(WORLD_SIZE=str(WORLD), RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)  # two processes share the cores
    info = distributed.init_from_env("cpu", timeout=datetime.timedelta(seconds=30))
    assert (info.rank, info.world_size, info.local_rank, info.is_main) == (rank, WORLD, rank, rank == 0)
    result = {"mean": distributed.all_reduce_mean(torch.tensor([rank + 1.0, 10.0 * rank]), info)}

    x, y, noise = fixed_batch()
    shard = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
    torch.manual_seed(100 + rank)  # different weights per rank: wrap must broadcast rank 0's
    model = RecurrentAttention(Config(**CONFIG))
    net = distributed.wrap(model, info)
    assert isinstance(net, torch.nn.parallel.DistributedDataParallel)
    result["start"] = {k: v.clone() for k, v in model.state_dict().items()}
    sgd_steps(net, model, x[shard], y[shard], noise[:, :, shard])
    result["ram"] = model.state_dict()

    # The random-glimpse ablation: its location network never gets a gradient.
    torch.manual_seed(200 + rank)
    model = RecurrentAttention(Config(model="random", **CONFIG))
    net = distributed.wrap(model, info)
    result["random_start"] = {k: v.clone() for k, v in model.state_dict().items()}
    distributed.seed_epoch(1, 0, info)  # each rank its own random glimpses
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(STEPS):
        loss, _ = hybrid_loss(net(x[shard]), y[shard])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    result["random"] = model.state_dict()
    result["random_locations"] = model(x[shard]).locations
    result["locator_grad"] = model.locator.fc.weight.grad

    torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    distributed.barrier(info)
    distributed.cleanup(info)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Run the two workers once; their saved results for every test of this module."""
    out = tmp_path_factory.mktemp("ddp")
    ctx = mp.spawn(worker, args=(free_port(), str(out)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + 90
    while not ctx.join(timeout=1):  # raises if a worker failed
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("the two training processes did not finish in 90 s")
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


def assert_same(a: dict, b: dict, **tol) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=lambda m: f"{k}: {m}", **tol)


def test_metrics_are_averaged_over_ranks(ranks):
    for r in ranks:
        torch.testing.assert_close(r["mean"], torch.tensor([1.5, 5.0]))


def test_ranks_start_from_rank0_weights_and_stay_identical(ranks):
    r0, r1 = ranks
    assert_same(r0["start"], r1["start"], rtol=0, atol=0)
    assert_same(r0["ram"], r1["ram"], rtol=0, atol=0)
    # the steps did move every part of the model, the location network included
    for k in r0["ram"]:
        assert not torch.equal(r0["ram"][k], r0["start"][k]), f"{k} never changed"


def test_two_processes_train_like_one_with_the_global_batch(ranks):
    x, y, noise = fixed_batch()
    torch.manual_seed(0)
    model = RecurrentAttention(Config(**CONFIG))
    model.load_state_dict(ranks[0]["start"])
    sgd_steps(model, model, x, y, noise)
    assert_same(ranks[0]["ram"], model.state_dict(), rtol=1e-5, atol=1e-6)


def test_unused_location_network_of_random_model(ranks):
    r0, r1 = ranks
    assert_same(r0["random_start"], r1["random_start"], rtol=0, atol=0)
    assert_same(r0["random"], r1["random"], rtol=0, atol=0)
    for r in ranks:
        assert r["locator_grad"] is None
        torch.testing.assert_close(r["random"]["locator.fc.weight"], r0["random_start"]["locator.fc.weight"])
        assert not torch.equal(r["random"]["classifier.fc.weight"], r0["random_start"]["classifier.fc.weight"])
    # each rank explored on its own (seed_epoch differs by rank)
    assert not torch.equal(r0["random_locations"], r1["random_locations"])


# --- one process: nothing is initialised ---------------------------------------------

@pytest.fixture
def clean_env(monkeypatch):
    for k in DIST_ENV:
        monkeypatch.delenv(k, raising=False)
    return monkeypatch


def test_single_process_without_torchrun(clean_env):
    for world in (None, "1"):
        if world:
            clean_env.setenv("WORLD_SIZE", world)
        info = distributed.init_from_env("cpu")
        assert info == distributed.SINGLE and info.is_main and not info.distributed
        assert not torch.distributed.is_initialized()
        model = RecurrentAttention(Config(**CONFIG))
        assert distributed.wrap(model, info) is model
        t = torch.tensor([1.0, 2.0])
        assert distributed.all_reduce_mean(t, info) is t
        state = torch.get_rng_state()
        distributed.seed_epoch(1, 3, info)  # leaves the single-process RNG alone
        assert torch.equal(torch.get_rng_state(), state)
        with distributed.local_main_first(info):
            pass
        distributed.barrier(info)
        distributed.cleanup(info)
        assert distributed.local_device(torch.device("cuda"), info) == torch.device("cuda")


def test_incomplete_environment_is_a_user_error(clean_env):
    clean_env.setenv("WORLD_SIZE", "2")
    with pytest.raises(RamError, match="torchrun"):
        distributed.init_from_env("cpu")
    clean_env.setenv("WORLD_SIZE", "two")
    with pytest.raises(RamError, match="WORLD_SIZE"):
        distributed.init_from_env("cpu")


def test_too_few_gpus_is_a_user_error(clean_env):
    clean_env.setenv("WORLD_SIZE", "2")
    clean_env.setenv("RANK", "1")
    clean_env.setenv("LOCAL_RANK", str(torch.cuda.device_count()))
    clean_env.setenv("MASTER_ADDR", "127.0.0.1")
    clean_env.setenv("MASTER_PORT", "29500")
    with pytest.raises(RamError, match="--nproc_per_node"):
        distributed.init_from_env("cuda")


def test_seed_epoch_differs_by_rank_and_epoch_and_repeats():
    def draw(rank, epoch):
        distributed.seed_epoch(1, epoch, distributed.DistInfo(rank=rank, world_size=2, local_rank=rank))
        return torch.randn(4)
    saved = torch.get_rng_state()
    try:
        a, b, c = draw(0, 0), draw(1, 0), draw(0, 1)
        assert not torch.equal(a, b) and not torch.equal(a, c)
        assert torch.equal(draw(1, 0), b)
    finally:
        torch.set_rng_state(saved)


def test_local_device_is_the_rank_gpu():
    info = distributed.DistInfo(rank=5, world_size=8, local_rank=1)
    assert distributed.local_device(torch.device("cuda"), info) == torch.device("cuda", 1)
    assert distributed.local_device(torch.device("cpu"), info) == torch.device("cpu")
