"""The glimpse loop: T glimpses, each folded into the core's state h_t.

For t = 0 .. T-1 (paper, section 4), starting at l_0: the image centre (0, 0) as in the
paper, or a learned location (``--first_location learned``, the preset of the 28x28
data sets):

    g_t = f_g(rho(x, l_t), l_t)             the glimpse network
    h_t = f_h(h_{t-1}, g_t)                  the core network, h_{-1} = 0
    l_{t+1} = choose(h_t)                    where to look next (t < T-1)

``choose`` is the location policy's draw. It is an action, not a function to
differentiate: it runs without gradient and returns (the location to look at, the raw
sample to score). The policy's log-probabilities and the baselines are computed
afterwards from the detached h_t, all steps at once (model.py).

Two implementations of the same recurrence:

* ``unroll_autograd``: the loop as written above, differentiated by autograd. It serves
  any core (the LSTM too), runs evaluation (no gradient, so nothing to keep), and is the
  reference the tests hold the other to.
* ``unroll_rnn``: the ReLU-RNN core with a hand-written backward pass. Autograd would
  record some fifty small operations per glimpse and multiply out each weight's gradient
  one time step at a time. Here the only sequential part of the backward pass is the
  recurrence itself, dh_{t-1} = (dh_t * [h_t > 0]) W_hh; every weight's gradient is a
  single matrix product over all T*B rows at once, and the forward pass writes its
  activations straight into the buffers the backward pass reads. The numbers are the
  same up to float rounding (tests/test_unroll.py); training was 14% faster on a 2-core
  AVX2 CPU (docs/speed.md).
"""
from __future__ import annotations

import functools
from typing import Callable

import torch

from .networks import CoreNetwork, GlimpseNetwork
from .retina import Retina

Choose = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether --precision (bf16 | fp32 | auto) means bfloat16 products on this device."""
    return precision == "bf16" or (precision == "auto" and native_bf16(device.type))


@functools.lru_cache(maxsize=None)
def native_bf16(device_type: str) -> bool:
    """Whether the device multiplies bfloat16 natively (AVX-512 BF16 or AMX on a CPU, a
    bfloat16-capable GPU), so that --precision auto gains speed rather than losing it."""
    if device_type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device_type == "cpu":
        return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return False


def unroll(x: torch.Tensor, glimpse_net: GlimpseNetwork, core: CoreNetwork, choose: Choose,
           num_glimpses: int, bf16: bool = False, copies: int = 1, last_only: bool = False,
           first: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the glimpse loop on images x (B, C, H, W), each ``copies`` times: B = x's rows
    times copies, row j * B + i a copy of image i (the retina's table is built once).

    Returns h (T, B, hidden), in x's dtype, with a gradient path to the glimpse and core
    networks, the policy's raw samples (T-1, B, 2) and the locations looked at,
    l_0 .. l_{T-1} (T, B, 2); the last two carry no gradient.

    ``last_only``: h is only h_{T-1}, (1, B, hidden), which is all that classifying needs;
    evaluation then neither stacks nor casts the other steps' states.

    ``first``: l_0 (B, 2), where the first glimpse looks; None: the centre.

    ``bf16``: the matrix products of the glimpse and core networks take bfloat16 inputs
    (accumulating in float32), everything else stays float32. On CPUs with AVX-512 BF16
    and on recent GPUs those products run several times faster (docs/speed.md).
    """
    # Without gradients (evaluation) there is no backward pass to prepare for, and the
    # plain loop, which keeps no per-step buffers, is the faster one. Under torch.compile
    # (--compile) the compiler writes the plain loop's backward itself, fused.
    if core.use_lstm or not torch.is_grad_enabled() or torch.compiler.is_compiling():
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            h, samples, locations = unroll_autograd(x, glimpse_net, core, choose, num_glimpses, copies, last_only,
                                                    first)
        return h.to(x.dtype), samples.to(x.dtype), locations.to(x.dtype)
    h, samples, locations = unroll_rnn(x, glimpse_net, core, choose, num_glimpses,
                                       torch.bfloat16 if bf16 else x.dtype, copies, first)
    return (h[-1:] if last_only else h), samples, locations


def unroll_autograd(x, glimpse_net, core, choose, num_glimpses, copies=1, last_only=False, first=None):
    """The loop as the paper writes it, one glimpse at a time, for any core (h: every
    step's state, or with ``last_only`` the last one's)."""
    retina = Retina(x, glimpse_net.glimpse_size, glimpse_net.num_scales, copies)
    state = None  # h_{-1} = 0: the core skips its product
    l = x.new_zeros(x.shape[0] * copies, 2) if first is None else first.to(x.dtype)
    hs, samples, locations = [], [], [l]
    for t in range(num_glimpses):
        state = core(glimpse_net(retina, l), state)
        hs.append(state[0])
        if t < num_glimpses - 1:  # the last location would never be looked at
            with torch.no_grad():
                l, sample = choose(state[0].to(x.dtype))
            locations.append(l)
            samples.append(sample)
    samples = torch.stack(samples) if samples else x.new_zeros(0, x.shape[0] * copies, 2)
    return (state[0][None] if last_only else torch.stack(hs)), samples, torch.stack(locations)


def unroll_rnn(x, glimpse_net, core, choose, num_glimpses, dtype=None, copies=1, first=None):
    """The loop for the ReLU-RNN core, with the time-batched backward of ``_RNNUnroll``;
    its matrix products take ``dtype`` inputs (default: x's)."""
    g, c = glimpse_net, core
    return _RNNUnroll.apply(x, choose, num_glimpses, g.glimpse_size, g.num_scales, dtype or x.dtype, copies, first,
                            g.fc_rho.weight, g.fc_rho.bias, g.fc_l.weight, g.fc_l.bias,
                            g.fc_g.weight, g.fc_g.bias, c.fc_h.weight, c.fc_h.bias)


class _RNNUnroll(torch.autograd.Function):
    """Forward and backward of the glimpse loop with the ReLU-RNN core (module doc).

    Per step, with [a, b] a concatenation (as GlimpseNetwork and CoreNetwork compute it):
        u_t = [relu(W_rho rho_t + b_rho), relu(W_l l_t + b_l)]
        v_t = [h_{t-1}, relu(W_g u_t + b_g)]
        h_t = relu(W_h v_t + b_h)
    The forward pass keeps rho, l, u, v and h for all steps as (T, B, .) buffers, in the
    products' dtype; the weights are cast to it once per call and their gradients back.
    """

    @staticmethod
    def forward(ctx, x, choose, T, glimpse_size, num_scales, dtype, copies, first, w_rho, b_rho, w_l, b_l, w_g, b_g,
                w_h, b_h):
        B, H, gh = x.shape[0] * copies, w_h.shape[0], w_rho.shape[0]
        ctx.weight_dtype = w_h.dtype
        w_rho, b_rho, w_l, b_l, w_g, b_g, w_h, b_h = (
            p.to(dtype) for p in (w_rho, b_rho, w_l, b_l, w_g, b_g, w_h, b_h))
        retina = Retina(x, glimpse_size, num_scales, copies)
        rho = x.new_empty(T, B, w_rho.shape[1], dtype=dtype)
        l = x.new_zeros(T, B, 2)           # l_0 is the centre, unless given
        if first is not None:
            l[0] = first
        u = x.new_empty(T, B, 2 * gh, dtype=dtype)
        v = x.new_empty(T, B, 2 * H, dtype=dtype)
        v[0, :, :H] = 0                    # h_{-1}
        h = x.new_empty(T, B, H, dtype=dtype)
        samples = x.new_empty(T - 1, B, 2)
        # Every step's views of the buffers and the transposed weights, made once: at batch
        # 128 indexing them afresh at every step costs as much as a small product.
        rho_, l_, u_, v_, h_, samples_ = (a.unbind(0) for a in (rho, l, u, v, h, samples))
        h_g, h_l, h_prev, g_ = u[..., :gh].unbind(0), u[..., gh:].unbind(0), v[..., :H].unbind(0), v[..., H:].unbind(0)
        w_rho_t, w_l_t, w_g_t, w_h_t, w_hg_t = w_rho.t(), w_l.t(), w_g.t(), w_h.t(), w_h[:, H:].t()
        for t in range(T):
            rho_[t].copy_(retina.glimpse(l_[t]))
            torch.addmm(b_rho, rho_[t], w_rho_t, out=h_g[t])
            torch.addmm(b_l, l_[t].to(dtype), w_l_t, out=h_l[t])
            u_[t].relu_()
            torch.addmm(b_g, u_[t], w_g_t, out=g_[t])
            g_[t].relu_()
            if t == 0:  # h_{-1} = 0: W_h v_0 is only the g_0 half
                torch.addmm(b_h, g_[0], w_hg_t, out=h_[0])
            else:
                torch.addmm(b_h, v_[t], w_h_t, out=h_[t])
            h_[t].relu_()
            if t < T - 1:
                h_prev[t + 1].copy_(h_[t])
                next_l, sample = choose(h_[t].to(x.dtype))
                l_[t + 1].copy_(next_l)
                samples_[t].copy_(sample)
        ctx.save_for_backward(rho, l, u, v, h, w_g, w_h)
        ctx.mark_non_differentiable(samples, l)
        return h.to(x.dtype), samples, l

    @staticmethod
    def backward(ctx, dh_out, _d_samples, _d_l):
        rho, l, u, v, h, w_g, w_h = ctx.saved_tensors
        T, B, H = h.shape
        dh_out = dh_out.to(h.dtype)
        gh = u.shape[2] // 2
        # The recurrence, backwards in time: dp_t = dL/d(W_h v_t + b_h).
        dp = torch.empty_like(h)
        w_hh = w_h[:, :H]
        for t in reversed(range(T)):
            dh = dh_out[t] if t == T - 1 else torch.addmm(dh_out[t], dp[t + 1], w_hh)
            _relu_backward(dh, h[t], out=dp[t])
        # Everything else at once over the T*B rows.
        dp, v, u = dp.view(T * B, H), v.view(T * B, 2 * H), u.view(T * B, 2 * gh)
        dz = _relu_backward(dp @ w_h[:, H:], v[:, H:])   # through g_t = relu(z_t)
        du = _relu_backward(dz @ w_g, u)                  # through u_t = relu(.)
        da, dc = du[:, :gh], du[:, gh:]
        grads = (da.t() @ rho.view(T * B, -1), da.sum(0),
                 dc.t() @ l.view(T * B, 2).to(dc.dtype), dc.sum(0),
                 dz.t() @ u, dz.sum(0),
                 dp.t() @ v, dp.sum(0))
        return (None,) * 8 + tuple(g.to(ctx.weight_dtype) for g in grads)


def _relu_backward(grad: torch.Tensor, output: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """grad where the ReLU's output is positive, else 0: one pass, as autograd's own ReLU does."""
    if out is None:
        return torch.ops.aten.threshold_backward(grad, output, 0)
    return torch.ops.aten.threshold_backward.grad_input(grad, output, 0, grad_input=out)
