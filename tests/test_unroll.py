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
    choose = model._policy(deterministic)
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


@pytest.mark.parametrize("flags", [{}, {"reinforce_core": True, "location_hidden": 8}],
                         ids=["default", "reinforce_core"])
def test_hybrid_loss_gradients_match_on_the_model(monkeypatch, flags):
    """The model's default path (hand-written) and the plain loop train identically, also
    when REINFORCE's gradient enters the loop at every step (--reinforce_core)."""
    import ram.model.ram
    model = _model(num_glimpses=4, hidden_size=32, glimpse_hidden=16, **flags)
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    grads = []
    for fn in (unroll_autograd, unroll_rnn):
        monkeypatch.setattr(ram.model.ram, "unroll", fn)
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
