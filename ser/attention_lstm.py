"""Attention-gate LSTM (LSTM-AT) of Xie et al., TASLP 27(11), 2019.

One layer maps inputs x_t to outputs h_t with

    f_t = sigmoid(V_f tanh(W_f c_{t-1}) + b_f)           attention gate
    g_t = tanh(W_c [h_{t-1}, x_t] + b_c)
    c_t = f_t * c_{t-1} + (1 - f_t) * g_t                input gate is 1 - f_t
    o_t = sigmoid(W_o [h_{t-1}, x_t] + b_o  (+ p_o * c_t with the peephole))
    h_t = o_t * tanh(c_t)

The x_t parts of W_c and W_o are applied to all frames at once by one GEMM
(``input_proj``); the recurrence itself runs in :class:`AttentionGateRecurrence`,
an autograd Function with a hand-written backward that does only the recurrent
products per step, in place into preallocated buffers, and all weight gradients
as one GEMM over every step at the end. :func:`attention_gate_scan` is the same
recurrence in plain tensor ops; TorchScript export (scripting or tracing) goes
through it, and the tests check both against each other.
"""

import math
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

_sigmoid_backward = torch.ops.aten.sigmoid_backward.grad_input
_tanh_backward = torch.ops.aten.tanh_backward.grad_input


class AttentionGateRecurrence(torch.autograd.Function):
    """One LSTM-AT layer over time-major, input-projected frames.

    Inputs: ``x_proj`` (T, B, 2H): [W_c x_t + b_c, W_o x_t + b_o]; ``weight_hh``
    (2H, H): the h_{t-1} parts of W_c and W_o, stacked; ``weight_f`` (A, H);
    ``weight_vf`` (H, A); ``bias_f`` (H,); ``peephole`` (H,) or None.
    Output: h_1..h_T as (T, B, H), from zero initial states.
    """

    @staticmethod
    def forward(
        ctx, x_proj: Tensor, weight_hh: Tensor, weight_f: Tensor, weight_vf: Tensor, bias_f: Tensor,
        peephole: Optional[Tensor],
    ) -> Tensor:
        steps, batch, hidden = x_proj.size(0), x_proj.size(1), weight_hh.size(1)
        new = dict(dtype=x_proj.dtype, device=x_proj.device)
        # Row t of c and h is the state before step t, so c[:T] / h[:T] are the
        # previous states the backward needs, and h[1:] is the output.
        c = torch.zeros(steps + 1, batch, hidden, **new)
        h = torch.zeros(steps + 1, batch, hidden, **new)
        a = torch.empty(steps, batch, weight_f.size(0), **new)
        f, tanh_c = torch.empty(steps, batch, hidden, **new), torch.empty(steps, batch, hidden, **new)
        # Every tanh below is 2 sigmoid(2x) - 1: torch.tanh costs about three
        # torch.sigmoid on x86 CPUs (AVX2 kernels), and the error is ~1e-7 in float32.
        # The 2x is folded into the operands once (W_f, the g rows of W_hh and the g
        # half of x_proj doubled, which is exact), so a step pays one sigmoid and one
        # 2s - 1 per tanh, and g's sigmoid and o's share one pass.
        scale_go = torch.ones(2 * hidden, **new)
        scale_go[:hidden] = 2.0
        go = x_proj * scale_go  # [g_t, o_t]: pre-activations, then the gates in place
        g, o = go[..., :hidden], go[..., hidden:]
        w_hh = weight_hh.t() * scale_go
        w_f2, v_f = weight_f.t() * 2.0, weight_vf.t()
        minus_one = torch.tensor(-1.0, **new)
        # Per-step views made once (unbind), not indexed anew in every step.
        steps_of = zip(c.unbind(0), c[1:].unbind(0), h.unbind(0), h[1:].unbind(0), a.unbind(0), f.unbind(0),
                       go.unbind(0), g.unbind(0), o.unbind(0), tanh_c.unbind(0))
        for c_prev, c_t, h_prev, h_t, a_t, f_t, go_t, g_t, o_t, tanh_c_t in steps_of:
            torch.mm(c_prev, w_f2, out=a_t).sigmoid_()
            torch.add(minus_one, a_t, alpha=2.0, out=a_t)
            torch.addmm(bias_f, a_t, v_f, out=f_t).sigmoid_()
            go_t.addmm_(h_prev, w_hh)
            if peephole is None:
                go_t.sigmoid_()  # g's sigmoid and o's in one pass
                torch.add(minus_one, g_t, alpha=2.0, out=g_t)
                torch.lerp(g_t, c_prev, f_t, out=c_t)
            else:
                torch.add(minus_one, g_t.sigmoid_(), alpha=2.0, out=g_t)
                torch.lerp(g_t, c_prev, f_t, out=c_t)
                o_t.addcmul_(peephole, c_t).sigmoid_()
            torch.mul(c_t, 2.0, out=tanh_c_t).sigmoid_()
            torch.add(minus_one, tanh_c_t, alpha=2.0, out=tanh_c_t)
            torch.mul(o_t, tanh_c_t, out=h_t)
        ctx.save_for_backward(weight_hh, weight_f, weight_vf, peephole, c, h, a, f, go, tanh_c)
        return h[1:]

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> Tuple[Optional[Tensor], ...]:
        """Backwards in time, with dh = dL/dh_t (output plus recurrent), dc = dL/dc_t:

            dz_o = dh tanh(c_t) o (1 - o)                  dz_* : w.r.t. pre-activations
            dc  += dh o (1 - tanh^2 c_t)  (+ dz_o p_o)
            dz_f = dc (c_{t-1} - g) f (1 - f)
            dz_g = dc (1 - f) (1 - g^2)
            dz_a = (dz_f V_f) (1 - a^2)                    a = tanh(W_f c_{t-1})
            dc_{t-1} = dc f + dz_a W_f
            dh_{t-1} = grad_out_{t-1} + [dz_g, dz_o] W_hh
        """
        weight_hh, weight_f, weight_vf, peephole, c, h, a, f, go, tanh_c = ctx.saved_tensors
        steps, hidden = f.size(0), f.size(2)
        g, o = go[..., :hidden], go[..., hidden:]
        # Gradients w.r.t. the pre-activations of [g, o], f and the inner
        # attention-gate layer, kept for all steps for the final weight GEMMs.
        dz_go, dz_f, dz_a = torch.empty_like(go), torch.empty_like(f), torch.empty_like(a)
        dz_g, dz_o = dz_go[..., :hidden], dz_go[..., hidden:]
        grad_h = grad_out[steps - 1].clone()
        grad_c = torch.zeros_like(grad_h)
        grad_a = torch.empty_like(a[0])
        tmp, grad_c_f = torch.empty_like(grad_h), torch.empty_like(grad_h)
        grad_out_prev = (None,) + grad_out[:-1].unbind(0)  # the output gradient of step t - 1
        steps_of = zip(grad_out_prev, c.unbind(0), a.unbind(0), f.unbind(0), g.unbind(0), o.unbind(0),
                       tanh_c.unbind(0), dz_go.unbind(0), dz_o.unbind(0), dz_f.unbind(0), dz_g.unbind(0),
                       dz_a.unbind(0))
        for grad_out_p, c_prev, a_t, f_t, g_t, o_t, tanh_c_t, dz_go_t, dz_o_t, dz_f_t, dz_g_t, dz_a_t in reversed(
                list(steps_of)):
            _sigmoid_backward(torch.mul(grad_h, tanh_c_t, out=tmp), o_t, grad_input=dz_o_t)
            grad_c.add_(_tanh_backward(torch.mul(grad_h, o_t, out=tmp), tanh_c_t, grad_input=tmp))
            if peephole is not None:
                grad_c.addcmul_(dz_o_t, peephole)
            torch.sub(c_prev, g_t, out=tmp).mul_(grad_c)
            _sigmoid_backward(tmp, f_t, grad_input=dz_f_t)
            torch.mul(grad_c, f_t, out=grad_c_f)
            _tanh_backward(torch.sub(grad_c, grad_c_f, out=tmp), g_t, grad_input=dz_g_t)
            _tanh_backward(torch.mm(dz_f_t, weight_vf, out=grad_a), a_t, grad_input=dz_a_t)
            torch.addmm(grad_c_f, dz_a_t, weight_f, out=grad_c)
            if grad_out_p is not None:
                torch.addmm(grad_out_p, dz_go_t, weight_hh, out=grad_h)

        def flat(x: Tensor) -> Tensor:
            return x.reshape(-1, x.size(-1))

        needs = ctx.needs_input_grad
        grad_w_hh = flat(dz_go).t().mm(flat(h[:steps])) if needs[1] else None
        grad_w_f = flat(dz_a).t().mm(flat(c[:steps])) if needs[2] else None
        grad_v_f = flat(dz_f).t().mm(flat(a)) if needs[3] else None
        grad_b_f = flat(dz_f).sum(0) if needs[4] else None
        grad_p = (flat(dz_o) * flat(c[1:])).sum(0) if peephole is not None and needs[5] else None
        return dz_go, grad_w_hh, grad_w_f, grad_v_f, grad_b_f, grad_p


@torch.jit.script_if_tracing
def attention_gate_scan(
    x_proj: Tensor,
    weight_hh: Tensor,
    weight_f: Tensor,
    weight_vf: Tensor,
    bias_f: Tensor,
    peephole: Optional[Tensor],
) -> Tensor:
    """The recurrence of :class:`AttentionGateRecurrence` as a plain step loop
    (scripted when traced, so a traced model keeps the loop over any number of frames)."""
    if peephole is None:
        return _attention_gate_loop(x_proj, weight_hh, weight_f, weight_vf, bias_f, bias_f, False)
    return _attention_gate_loop(x_proj, weight_hh, weight_f, weight_vf, bias_f, peephole, True)


@torch.jit.script_if_tracing
def _attention_gate_loop(
    x_proj: Tensor,
    weight_hh: Tensor,
    weight_f: Tensor,
    weight_vf: Tensor,
    bias_f: Tensor,
    peephole: Tensor,
    use_peephole: bool,
) -> Tensor:
    """:func:`attention_gate_scan` with the peephole as a tensor and a flag: the ONNX
    exporter writes a None argument as an untyped Optional that onnxruntime rejects."""
    hidden = weight_hh.size(1)
    h = x_proj.new_zeros(x_proj.size(1), hidden)
    c = torch.zeros_like(h)
    outputs: List[Tensor] = []
    for t in range(x_proj.size(0)):
        f = torch.sigmoid(torch.tanh(c @ weight_f.t()) @ weight_vf.t() + bias_f)
        z_c, z_o = (x_proj[t] + h @ weight_hh.t()).chunk(2, dim=-1)
        c = f * c + (1 - f) * torch.tanh(z_c)
        if use_peephole:
            z_o = z_o + peephole * c
        h = torch.sigmoid(z_o) * torch.tanh(c)
        outputs.append(h)
    return torch.stack(outputs)


class AttentionGateLSTMLayer(nn.Module):
    """One LSTM-AT layer (equations in the module docstring).

    Args:
        input_size: D, size of x_t.
        hidden_size: H.
        gate_size: A, the rows of W_f (inner size of the attention gate).
        forget_bias: initial value of b_f; sigmoid(1.0) = 0.73 keeps most of
            c_{t-1} at the start of training.
        peephole: o_t also sees c_t through a diagonal weight p_o (Graves' LSTM
            convention: the output gate looks at the cell it exposes).
    """

    def __init__(self, input_size: int, hidden_size: int, gate_size: int, forget_bias: float, peephole: bool):
        super().__init__()
        self.input_proj = nn.Linear(input_size, 2 * hidden_size)  # x_t parts of W_c, W_o; b_c, b_o
        self.weight_hh = nn.Parameter(torch.empty(2 * hidden_size, hidden_size))  # h_{t-1} parts
        self.weight_f = nn.Parameter(torch.empty(gate_size, hidden_size))
        self.weight_vf = nn.Parameter(torch.empty(hidden_size, gate_size))
        self.bias_f = nn.Parameter(torch.empty(hidden_size))
        self.peephole = nn.Parameter(torch.empty(hidden_size)) if peephole else None
        bound = 1.0 / math.sqrt(hidden_size)  # as torch.nn.LSTM
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)
        nn.init.constant_(self.bias_f, forget_bias)

    def forward(self, x: Tensor) -> Tensor:
        """x: (T, B, D) time-major -> h: (T, B, H)."""
        x_proj = self.input_proj(x)
        if torch.jit.is_scripting() or torch.jit.is_tracing():
            peephole = self.peephole  # no Optional reaches the exported graph (see _attention_gate_loop)
            if peephole is None:
                return _attention_gate_loop(
                    x_proj, self.weight_hh, self.weight_f, self.weight_vf, self.bias_f, self.bias_f, False)
            return _attention_gate_loop(
                x_proj, self.weight_hh, self.weight_f, self.weight_vf, self.bias_f, peephole, True)
        return self._fast_recurrence(x_proj)

    @torch.jit.unused
    def _fast_recurrence(self, x_proj: Tensor) -> Tensor:
        return AttentionGateRecurrence.apply(
            x_proj, self.weight_hh, self.weight_f, self.weight_vf, self.bias_f, self.peephole
        )


class AttentionGateLSTM(nn.Module):
    """Stack of :class:`AttentionGateLSTMLayer`; (B, T, D) -> (B, T, H).

    Padded frames come after the valid ones, so they cannot change the valid
    outputs of this forward recurrence; the caller ignores the padded outputs.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        gate_size: int,
        forget_bias: float,
        peephole: bool,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            AttentionGateLSTMLayer(input_size if i == 0 else hidden_size, hidden_size, gate_size, forget_bias, peephole)
            for i in range(num_layers)
        )
        # Between layers, as torch.nn.LSTM's ``dropout``: on the outputs of every layer but the last.
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = x.transpose(0, 1)
        for i, layer in enumerate(self.layers):
            if i > 0:
                x = self.dropout(x)
            x = layer(x)
        return x.transpose(0, 1)
