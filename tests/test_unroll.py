"""The hand-written backward of the RNN glimpse loop against autograd on the plain loop."""
import pytest
import torch

from ram.config import Config
from ram.model.losses import hybrid_loss
from ram.model import RecurrentAttention
from ram.model.unroll import unroll_autograd, unroll_rnn


def _model(**overrides):
    torch.manual_seed(0)
    model = RecurrentAttention(Config(**overrides))
    # Biases away from zero so that some units are off and the ReLU masks matter.
    for p in model.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    return model


def _run(unroll_fn, model, x, deterministic, seed=7):
    torch.manual_seed(seed)
    choose, _ = model._policy(deterministic)
    return unroll_fn(x, model.glimpse_net, model.core, choose, model.num_glimpses)


@pytest.mark.parametrize("num_glimpses,glimpse_size,num_scales", [(1, 8, 1), (2, 4, 2), (6, 8, 1), (5, 6, 3)])
@pytest.mark.parametrize("deterministic", [False, True])
def test_same_states_locations_and_gradients_as_autograd(num_glimpses, glimpse_size, num_scales, deterministic):
    model = _model(num_glimpses=num_glimpses, glimpse_size=glimpse_size, num_scales=num_scales,
                   hidden_size=32, glimpse_hidden=16, std=0.3)
    x = torch.rand(9, 1, 28, 28)
    dh = torch.randn(num_glimpses, 9, 32)  # a loss on every h_t exercises the whole recurrence
    results = []
    for fn in (unroll_autograd, unroll_rnn):
        model.zero_grad()
        h, samples, locations = _run(fn, model, x, deterministic)
        (h * dh).sum().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((h.detach(), samples, locations, grads))
    (h0, s0, l0, g0), (h1, s1, l1, g1) = results
    torch.testing.assert_close(h1, h0)
    torch.testing.assert_close(s1, s0)
    torch.testing.assert_close(l1, l0)
    assert set(g1) == set(g0) == {n for n, _ in model.named_parameters() if n.startswith(("glimpse_net.", "core."))}
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], rtol=1e-4, atol=1e-6, msg=name)
    assert (l1[1:].abs() <= 1).all() and (l1[0] == 0).all()  # centre first, clamped after


@pytest.mark.parametrize("flags", [{}, {"reinforce_core": True, "location_hidden": 8}, {"first_location": "learned"}],
                         ids=["default", "reinforce_core", "first_location_learned"])
def test_hybrid_loss_gradients_match_on_the_model(monkeypatch, flags):
    """The model's default path (hand-written) and the plain loop train identically, also
    when REINFORCE's gradient enters the loop at every step (--reinforce_core)."""
    import ram.model.ram
    model = _model(num_glimpses=4, hidden_size=32, glimpse_hidden=16, **flags)
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    grads = []
    for fn in (unroll_autograd, unroll_rnn):
        monkeypatch.setattr(ram.model.ram, "unroll",
                            lambda *args, bf16, copies, last_only, first, fn=fn: fn(*args, copies=copies, first=first))
        model.zero_grad()
        torch.manual_seed(3)
        loss, _ = hybrid_loss(model(x), y)
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert set(grads[0]) == set(grads[1]) == {n for n, _ in model.named_parameters()}
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6, msg=name)


def test_glimpses_follow_the_policy_samples():
    """Each glimpse after the first looks where the previous step's draw said (clamped)."""
    model = _model(num_glimpses=5, hidden_size=32, glimpse_hidden=16, std=2.0)  # many draws off-image
    _, samples, locations = _run(unroll_rnn, model, torch.rand(4, 1, 28, 28), deterministic=False)
    torch.testing.assert_close(locations[1:], samples.clamp(-1, 1))
    assert (samples.abs() > 1).any()


def test_bf16_products_give_float32_states_and_gradients_close_to_float32():
    """--bf16: the loop's products take bfloat16 inputs, but what leaves it (h, gradients)
    is float32 and within bfloat16's rounding of the float32 loop. Against a random dh the
    gradients are sums of cancelling terms, where bfloat16's 8 bits leave about 7% of
    error in norm (autocast on the plain loop leaves the same); a wrong backward, 100%."""
    model = _model(num_glimpses=6, hidden_size=64, glimpse_hidden=32, std=0.3)
    x = torch.rand(32, 1, 28, 28)
    dh = torch.randn(6, 32, 64)
    # the same locations for both (bfloat16's rounding of h would move a policy's glimpses)
    where = torch.rand(5, 32, 2) * 2 - 1
    results = []
    for dtype in (torch.float32, torch.bfloat16):
        model.zero_grad()
        steps = iter(where)
        choose = lambda h: (lambda l: (l, l))(next(steps))  # noqa: E731
        h, _, _ = unroll_rnn(x, model.glimpse_net, model.core, choose, 6, dtype)
        (h * dh).sum().backward()
        results.append((h.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (h32, g32), (h16, g16) = results
    assert h16.dtype == torch.float32 and all(g.dtype == torch.float32 for g in g16.values())
    assert set(g16) == set(g32)
    assert (h16 - h32).norm() < 0.02 * h32.norm()
    for name in g32:
        assert (g16[name] - g32[name]).norm() < 0.15 * g32[name].norm(), name
    assert not torch.equal(h16, h32)  # the products did run in bfloat16


def test_bf16_evaluation_runs_the_plain_loop_under_autocast():
    model = _model(num_glimpses=3, hidden_size=32, glimpse_hidden=16, precision="bf16")
    with torch.no_grad():
        out = model(torch.rand(5, 1, 28, 28), deterministic=True)
    assert out.logits.dtype == torch.float32 and out.locations.dtype == torch.float32
