"""Which parameters each term of the hybrid loss trains, and how the policy behaves."""
import pytest
import torch

from ram.config import Config
from ram.errors import RamError
from ram.model.losses import hybrid_loss
from ram.model import RecurrentAttention

GROUPS = ("glimpse_net", "core", "locator", "classifier", "baseline")


def grads_by_group(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    touched = {g: False for g in GROUPS}
    for name, p in model.named_parameters():
        if p.grad is not None and p.grad.abs().sum() > 0:
            touched[name.split(".")[0]] = True
    return touched


@pytest.fixture(params=[False, True], ids=["rnn", "lstm"])
def setup(request):
    torch.manual_seed(0)
    model = RecurrentAttention(Config(use_lstm=request.param, num_glimpses=4))
    x = torch.rand(32, 1, 28, 28)
    y = torch.randint(0, 10, (32,))
    out = model(x)
    return model, out, y


def split_terms(out, y, reward="correct"):
    import torch.nn.functional as F
    ce = F.cross_entropy(out.logits, y)
    if reward == "correct":
        R = (out.logits.argmax(1) == y).float()
    else:  # the probability of the true class, as a constant
        R = torch.stack([F.softmax(out.logits[i].detach(), 0)[y[i]] for i in range(len(y))])
    reward = R[:, None].expand_as(out.baselines)
    reinforce = -(out.log_pi * (reward - out.baselines.detach())).sum(1).mean()
    mse = F.mse_loss(out.baselines, reward)
    return ce, reinforce, mse


@pytest.mark.parametrize("reward", ["correct", "probability"])
def test_reinforce_trains_only_the_location_network(setup, reward):
    model, out, y = setup
    _, reinforce, _ = split_terms(out, y, reward)
    assert grads_by_group(model, reinforce) == {
        "glimpse_net": False, "core": False, "locator": True, "classifier": False, "baseline": False}


def test_reinforce_core_lets_reinforce_reach_the_core_and_glimpse_networks():
    """--reinforce_core: the policy gradient also shapes the representation (not the
    classifier or the baseline), and the sampled locations still pass no gradient."""
    torch.manual_seed(0)
    model = RecurrentAttention(Config(num_glimpses=4, reinforce_core=True, location_hidden=16))
    x, y = torch.rand(32, 1, 28, 28), torch.randint(0, 10, (32,))
    out = model(x)
    _, reinforce, mse = split_terms(out, y)
    assert grads_by_group(model, reinforce) == {
        "glimpse_net": True, "core": True, "locator": True, "classifier": False, "baseline": False}
    assert grads_by_group(model, mse)["core"] is False  # the baseline still reads a detached h_t
    assert not out.locations.requires_grad


def test_cross_entropy_reaches_glimpse_core_and_action_networks(setup):
    model, out, y = setup
    ce, _, _ = split_terms(out, y)
    assert grads_by_group(model, ce) == {
        "glimpse_net": True, "core": True, "locator": False, "classifier": True, "baseline": False}
    # the 'where' pathway of the glimpse network learns too
    assert model.glimpse_net.fc_l.weight.grad.abs().sum() > 0


def test_baseline_mse_trains_only_the_baseline(setup):
    model, out, y = setup
    _, _, mse = split_terms(out, y)
    assert grads_by_group(model, mse) == {
        "glimpse_net": False, "core": False, "locator": False, "classifier": False, "baseline": True}


@pytest.mark.parametrize("reward", ["correct", "probability"])
def test_hybrid_loss_is_the_sum_of_its_terms(setup, reward):
    _, out, y = setup
    total, terms = hybrid_loss(out, y, reward=reward)
    ce, reinforce, mse = split_terms(out, y, reward)
    assert torch.allclose(total, ce + reinforce + mse)
    assert torch.allclose(terms["reinforce"], reinforce) and torch.allclose(terms["baseline"], mse)


def test_greedy_baseline_reinforces_a_sampled_path_by_how_it_beats_the_mean_path(setup):
    """--reinforce_baseline greedy: the advantage is R(sampled) - R(mean path), per image,
    so an image whose two paths earn the same reward adds nothing to REINFORCE."""
    model, out, y = setup
    R = (out.logits.argmax(1) == y).float()
    # A mean path that is right on the first half of the images and wrong on the rest.
    R_greedy = (torch.arange(len(y)) < len(y) // 2).float()
    greedy = torch.nn.functional.one_hot((y + 1 - R_greedy.long()) % 10, 10).float()
    expected = -(out.log_pi * (R - R_greedy)[:, None]).sum(1).mean()
    total, terms = hybrid_loss(out, y, greedy_logits=greedy)
    assert torch.allclose(terms["reinforce"], expected)
    ce, _, mse = split_terms(out, y)
    assert torch.allclose(total, ce + expected + mse)  # b_t is still learned, just not used
    same = R == R_greedy
    assert same.any() and (~same).any()
    g = torch.autograd.grad(total, out.log_pi, retain_graph=True)[0]
    assert (g[same] == 0).all() and (g[~same] != 0).all()
    assert grads_by_group(model, total - ce - mse)["locator"] is True
    # With --reward probability the advantage is the difference of the true class's
    # probabilities, dense where the 0/1 reward is mostly zero.
    p = lambda logits: logits.detach().softmax(1)[torch.arange(len(y)), y]
    _, terms = hybrid_loss(out, y, reward="probability", greedy_logits=greedy)
    assert torch.allclose(terms["reinforce"], -(out.log_pi * (p(out.logits) - p(greedy))[:, None]).sum(1).mean())


def test_leave_one_out_baseline_is_the_mean_reward_of_the_images_other_paths():
    """--paths K --reinforce_baseline leave_one_out: each sampled path's advantage is its
    reward minus the mean reward of the same image's K - 1 other paths."""
    torch.manual_seed(0)
    K, B = 3, 8
    model = RecurrentAttention(Config(num_glimpses=4, hidden_size=32, glimpse_hidden=16))
    x, y = torch.rand(B, 1, 28, 28), torch.randint(0, 10, (B,))
    out = model(x.repeat(K, 1, 1, 1))
    labels = y.repeat(K)
    _, terms = hybrid_loss(out, labels, reward="probability", paths=K)
    R = out.logits.detach().softmax(1)[torch.arange(K * B), labels].view(K, B)
    others = torch.stack([(R.sum(0) - R[k]) / (K - 1) for k in range(K)])  # written out path by path
    advantage = (R - others).reshape(-1, 1)
    assert torch.allclose(terms["reinforce"], -(out.log_pi * advantage).sum(1).mean())
    assert torch.allclose(advantage.view(K, B).sum(0), torch.zeros(B), atol=1e-6)  # centred per image
    with pytest.raises(RamError, match="leave_one_out and --paths K"):
        Config(paths=2).validate()


def test_mean_path_cross_entropy_trains_the_classifier_on_the_evaluated_path(setup):
    """--mean_path_ce W adds W * CE(mean path) and nothing else: the mean path's logits
    still only give REINFORCE its baseline reward, and its cross-entropy reaches the same
    networks as the sampled path's does."""
    import torch.nn.functional as F
    model, out, y = setup
    mean = model(torch.rand(32, 1, 28, 28), deterministic=True).logits
    plain, _ = hybrid_loss(out, y, greedy_logits=mean)
    total, _ = hybrid_loss(out, y, greedy_logits=mean, mean_path_ce=0.5)
    assert torch.allclose(total - plain, 0.5 * F.cross_entropy(mean, y))
    assert grads_by_group(model, total - plain) == {
        "glimpse_net": True, "core": True, "locator": False, "classifier": True, "baseline": False}
    with pytest.raises(RamError, match="--reinforce_baseline greedy"):
        Config(mean_path_ce=1.0).validate()


@pytest.mark.parametrize("reinforce_core,use_lstm,first_location", [
    (False, False, "centre"), (True, False, "centre"), (True, True, "centre"), (False, False, "learned")])
def test_the_trainer_runs_both_paths_in_one_unroll_with_the_two_unrolls_loss_and_gradients(
        reinforce_core, use_lstm, first_location):
    """The self-critical step (greedy baseline with mean_path_ce) runs the mean path and
    the sampled path as one batch of 2B rows, the first B on the mean, reading one retina
    table built for the B images. It must be the loss of the two separate unrolls it
    replaces, with the same gradients and the same noise (the LSTM core takes the plain
    loop, the ReLU core the hand-written backward)."""
    from ram.training.trainer import step_loss
    config = Config(num_glimpses=4, reward="probability", reinforce_baseline="greedy", mean_path_ce=0.5,
                    reinforce_core=reinforce_core, use_lstm=use_lstm, first_location=first_location, precision="fp32")
    torch.manual_seed(0)
    model = RecurrentAttention(config)
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))

    def grads(loss):
        model.zero_grad(set_to_none=True)
        loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    torch.manual_seed(1)
    mean = model(x, deterministic=True)
    sampled = model(x)
    want, want_terms = hybrid_loss(sampled, y, config.reinforce_weight, config.reward, mean.logits, 0.5)
    want_grads = grads(want)
    torch.manual_seed(1)
    got, got_terms = step_loss(config, model, model, x, y)
    got_grads = grads(got)
    torch.testing.assert_close(got, want)
    for k in want_terms:
        torch.testing.assert_close(got_terms[k], want_terms[k])
    assert got_grads.keys() == want_grads.keys() and "locator.fc.weight" in got_grads
    for n in want_grads:
        torch.testing.assert_close(got_grads[n], want_grads[n], rtol=1e-4, atol=1e-6, msg=n)
    # the first rows follow the mean exactly, the others draw what a batch of them alone draws
    torch.manual_seed(2)
    both = model(torch.cat([x, x]), greedy_rows=16)
    torch.manual_seed(2)
    alone = model(x)
    assert torch.equal(both.locations[:16], mean.locations)
    torch.testing.assert_close(both.locations[16:], alone.locations)
    assert not torch.equal(both.locations[16:], mean.locations)


def test_no_gradient_flows_through_sampled_locations(setup):
    model, out, y = setup
    assert not out.locations.requires_grad
    # Swap the sampled path for one where each location is a leaf we can watch:
    # the loss must not depend on the locations through any differentiable path.
    torch.manual_seed(1)
    x = torch.rand(8, 1, 28, 28)
    out = model(x)
    ce = torch.nn.functional.cross_entropy(out.logits, torch.zeros(8, dtype=torch.long))
    # CE's gradient w.r.t. the locator is zero: where we looked is not differentiated.
    model.zero_grad(set_to_none=True)
    ce.backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.locator.parameters())


def test_log_pi_is_the_gaussian_log_density_of_the_sample():
    from ram.model.networks import LocationNetwork
    torch.manual_seed(0)
    net = LocationNetwork(hidden_size=16, std=0.2)
    h = torch.randn(64, 16) * 0.1
    l, log_pi = net(h)
    mu = torch.tanh(net.fc(h))
    inside = (l.abs() < 1).all(1)  # clamping only moves samples that left the image
    want = torch.distributions.Normal(mu, 0.2).log_prob(l).sum(1)
    assert inside.sum() > 50
    assert torch.allclose(log_pi[inside], want[inside], atol=1e-5)
    # the score's gradient reaches the policy's mean, not the sample
    log_pi.sum().backward()
    assert net.fc.weight.grad.abs().sum() > 0 and not l.requires_grad


def test_deterministic_policy_repeats_and_sampled_policy_explores():
    torch.manual_seed(0)
    model = RecurrentAttention(Config(num_glimpses=5))
    x = torch.rand(4, 1, 28, 28)
    a, b = model(x, deterministic=True), model(x, deterministic=True)
    assert torch.equal(a.locations, b.locations) and torch.equal(a.logits, b.logits)
    c = model(x)
    assert not torch.equal(a.locations[:, 1:], c.locations[:, 1:])
    assert torch.equal(c.locations[:, 0], torch.zeros(4, 2))  # l_0 is the centre
    assert c.locations.abs().max() <= 1


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_predict_proba_is_the_forward_pass_softmax_and_locations(precision):
    """Evaluation skips the policy's scores and the baselines, but must classify and look
    exactly as the training forward pass does, on the mean path and on sampled ones."""
    import torch.nn.functional as F
    torch.manual_seed(0)
    model = RecurrentAttention(Config(num_glimpses=4, precision=precision)).eval()
    x = torch.rand(16, 1, 28, 28)
    with torch.no_grad():
        out = model(x, deterministic=True)
        probs, locations = model.predict_proba(x)
        assert torch.equal(probs, F.softmax(out.logits, 1)) and torch.equal(locations, out.locations)
        torch.manual_seed(1)
        sampled = [model(x) for _ in range(3)]
        torch.manual_seed(1)
        probs, locations = model.predict_proba(x, mc_samples=3)
    assert torch.equal(probs, torch.stack([F.softmax(o.logits, 1) for o in sampled]).mean(0))
    assert torch.equal(locations, sampled[0].locations)


def test_random_glimpse_ablation_has_no_policy_gradient():
    torch.manual_seed(0)
    model = RecurrentAttention(Config(model="random", num_glimpses=4))
    out = model(torch.rand(8, 1, 28, 28))
    assert torch.equal(out.log_pi, torch.zeros(8, 3))
    m2 = model(torch.rand(8, 1, 28, 28), deterministic=True)
    assert not torch.equal(out.locations[:, 1:], m2.locations[:, 1:])


@pytest.mark.parametrize("scale", [0.1, 1.0])
def test_location_network_has_its_own_learning_rate(scale):
    from ram.training import build_optimizer
    model = RecurrentAttention(Config(lr=1e-3, policy_lr_scale=scale))
    opt, _ = build_optimizer(model.config, model)
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        assert lr_of[id(p)] == pytest.approx(scale * 1e-3 if name.startswith("locator.") else 1e-3), name
    assert len(lr_of) == len(list(model.parameters()))
    assert len(opt.param_groups) == 2  # at every scale: checkpoints resume alike


def test_a_learned_first_location_is_a_policy_choice_trained_by_reinforce():
    """--first_location learned: the deterministic path looks first at tanh(first) in every
    image, a sampled path at a draw around it, scored as the policy's first choice (with the
    baseline of h_{-1} = 0); REINFORCE's gradient reaches it, and the first glimpse reads
    the image there. The default looks at the centre and has no such parameter, so the
    checkpoints from before it load unchanged."""
    from ram.model.retina import Retina
    assert RecurrentAttention(Config()).locator.first is None
    torch.manual_seed(0)
    model = RecurrentAttention(Config(num_glimpses=3, first_location="learned", precision="fp32"))
    with torch.no_grad():
        model.locator.first.copy_(torch.tensor([0.3, -0.5]))
    first = torch.tanh(torch.tensor([0.3, -0.5])).expand(8, 2)
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    mean = model(x, deterministic=True)
    torch.testing.assert_close(mean.locations[:, 0], first)
    out = model(x)
    assert out.log_pi.shape == out.baselines.shape == (8, 3)
    assert (out.locations[:, 0] - first).abs().min() > 0  # drawn, not the mean
    # the draws all lie inside the image here, so the location is the scored sample
    torch.testing.assert_close(out.log_pi[:, 0], model.locator.log_prob(out.locations[:, 0], first))
    torch.testing.assert_close(out.baselines[:, 0], model.baseline(torch.zeros(8, 256)))
    _, reinforce, _ = split_terms(out, y)
    model.zero_grad(set_to_none=True)
    reinforce.backward()
    assert model.locator.first.grad.abs().sum() > 0
    h, _, _ = model._glimpses(x, deterministic=True)
    torch.testing.assert_close(h[0], model.core(model.glimpse_net(Retina(x, 8, 1), first))[0])
