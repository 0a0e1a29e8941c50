"""Utterance-level emotion classifiers of Xie et al., "Speech Emotion
Classification Using Attention-Based LSTM", IEEE/ACM TASLP 27(11), 2019.

A two-layer recurrent encoder turns frame features (B, T, D) into outputs
O = o_1..o_T (B, T, H); a pooling stage turns O into one vector per utterance;
an MLP gives the logits. The variants differ only in encoder and pooling:

    variant      encoder                         pooling
    lstm         torch.nn.LSTM                   last valid output o_L
    lstm_t       torch.nn.LSTM                   time attention
    lstm_f       torch.nn.LSTM                   feature attention
    lstm_at      attention-gate LSTM (LSTM-AT)   o_L
    lstm_tf      torch.nn.LSTM                   [time attention, feature attention]
    lstm_tf_at   attention-gate LSTM (LSTM-AT)   [time attention, feature attention]
    gru          torch.nn.GRU                    o_L

Time attention:    s_T = softmax_t(o_L W_T o_t),                 out_T = sum_t s_T(t) o_t
Feature attention: s_F(t) = softmax_H(tanh(o_t W_F) V_F),        out_F = sum_t s_F(t) * o_t
Both sum over the valid frames t <= L only, so padding is invisible.
Head: dropout, FC(pooled -> fc_dim), ReLU, dropout, FC(fc_dim -> classes), i.e.
512 -> 128 -> C with both attentions and 256 -> 128 -> C otherwise (H = 256).

Additions to the paper's model, off with 0 / 1: dropout on the input frames and
between the recurrent layers, and ``frame_stack`` k: k consecutive frames are
concatenated into one (D -> kD, T -> ceil(T / k)), so the recurrence runs k times
fewer steps; with a 16 ms frame shift, k = 2 still gives a 32 ms step.

Every option's default lives in conf/model/<variant>.yaml and its base (conf/model/base/);
:func:`build_model` fills the options it is not given from there.

Training runs the LSTM-AT through its fast autograd Function; torch.jit.script
(or torch.jit.trace) of a model runs it through a plain step loop instead, with
the same logits, for a TorchScript export.
"""

from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from ser.attention_lstm import AttentionGateLSTM
from ser.config import MODEL_CONF_DIR, load_model_config  # noqa: F401 (also imported from here)

MODEL_VARIANTS = ("lstm", "lstm_t", "lstm_f", "lstm_at", "lstm_tf", "lstm_tf_at", "gru")
ATTENTION_VARIANTS = ("lstm_t", "lstm_f", "lstm_tf", "lstm_tf_at")  # time and/or feature attention
CONF_DIR = MODEL_CONF_DIR

# variant -> (encoder cell, time attention, feature attention)
_VARIANT_LAYOUT = {
    "lstm": ("lstm", False, False),
    "lstm_t": ("lstm", True, False),
    "lstm_f": ("lstm", False, True),
    "lstm_at": ("attention_gate", False, False),
    "lstm_tf": ("lstm", True, True),
    "lstm_tf_at": ("attention_gate", True, True),
    "gru": ("gru", False, False),
}


class TorchRNN(nn.Module):
    """torch.nn.LSTM / GRU (oneDNN kernels) returning only the outputs (B, T, H).

    Run on the padded batch: the recurrence is forward-only, so the padding after
    a sequence cannot reach its valid outputs, and packing would only cost time.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.0):
        super().__init__()
        rnn_class = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn_class(input_size, hidden_size, num_layers, batch_first=True,
                             dropout=dropout if num_layers > 1 else 0.0)

    def forward(self, x: Tensor) -> Tensor:
        return self.rnn(x)[0]


class TimeAttention(nn.Module):
    """out_T = sum_t s_T(t) o_t with s_T = softmax over valid t of o_L W_T o_t."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.weight = nn.Linear(hidden_size, hidden_size, bias=False)  # W_T

    def forward(self, outputs: Tensor, last: Tensor, valid: Tensor) -> Tensor:
        return torch.bmm(self.weights(outputs, last, valid).unsqueeze(1), outputs).squeeze(1)

    def weights(self, outputs: Tensor, last: Tensor, valid: Tensor) -> Tensor:
        """s_T (B, T): sums to 1 over the valid frames, 0 on padding."""
        scores = torch.bmm(outputs, self.weight(last).unsqueeze(2)).squeeze(2)  # o_t . (W_T o_L)
        return scores.masked_fill(~valid, float("-inf")).softmax(dim=1)


class FeatureAttention(nn.Module):
    """out_F = sum over valid t of s_F(t) * o_t with s_F(t) = softmax_H(tanh(o_t W_F) V_F)."""

    def __init__(self, hidden_size: int, attention_size: int):
        super().__init__()
        self.weight = nn.Linear(hidden_size, attention_size, bias=False)  # W_F
        self.proj = nn.Linear(attention_size, hidden_size, bias=False)  # V_F

    def forward(self, outputs: Tensor, valid: Tensor) -> Tensor:
        return (self.weights(outputs) * outputs).masked_fill(~valid.unsqueeze(2), 0.0).sum(dim=1)

    def weights(self, outputs: Tensor) -> Tensor:
        """s_F (B, T, H): each frame's weights over the H encoder outputs (sum 1)."""
        return self.proj(torch.tanh(self.weight(outputs))).softmax(dim=2)


class SERModel(nn.Module):
    """Recurrent encoder + attention pooling + MLP head; build it with :func:`build_model`."""

    def __init__(self, config: Dict[str, Any]):
        super().__init__()
        self.config = dict(config)
        cell, use_time, use_feature = _VARIANT_LAYOUT[config["variant"]]
        self.input_dim: int = config["input_dim"]
        self.frame_stack: int = config["frame_stack"]
        hidden, layers = config["hidden_size"], config["num_layers"]
        encoder_input = self.input_dim * self.frame_stack
        self.input_dropout = nn.Dropout(config["input_dropout"])
        if cell == "attention_gate":
            self.encoder = AttentionGateLSTM(
                encoder_input, hidden, layers, config["gate_size"], config["forget_bias"], config["peephole"],
                config["rnn_dropout"],
            )
        else:
            self.encoder = TorchRNN(cell, encoder_input, hidden, layers, config["rnn_dropout"])
        self.time_attention = TimeAttention(hidden) if use_time else None
        self.feature_attention = FeatureAttention(hidden, config["attention_size"]) if use_feature else None
        pooled_size = hidden * max(1, int(use_time) + int(use_feature))
        dropout = config["dropout"]
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(pooled_size, config["fc_dim"]),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(config["fc_dim"], config["num_classes"]),
        )

    def forward(self, feats: Tensor, lengths: Tensor) -> Tensor:
        """feats (B, T, D) zero-padded, lengths (B,) valid frames -> logits (B, classes)."""
        outputs, last, valid = self._encode(feats, lengths)
        pooled: List[Tensor] = []
        if self.time_attention is not None:
            pooled.append(self.time_attention(outputs, last, valid))
        if self.feature_attention is not None:
            pooled.append(self.feature_attention(outputs, valid))
        if len(pooled) == 0:
            pooled.append(last)
        return self.head(torch.cat(pooled, dim=1))

    def _encode(self, feats: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Encoder outputs (B, T', H) over the model's steps (T' = ceil(T / frame_stack)),
        each utterance's last valid output (B, H) and the valid steps (B, T')."""
        if not torch.jit.is_tracing():  # data-dependent checks would freeze into a trace
            self._check_inputs(feats, lengths)
        lengths = lengths.to(feats.device)
        if self.frame_stack > 1:
            feats, lengths = self._stack_frames(feats, lengths)
        outputs = self.encoder(self.input_dropout(feats))
        batch, frames = outputs.size(0), outputs.size(1)
        last = outputs[torch.arange(batch, device=feats.device), lengths - 1]
        valid = torch.arange(frames, device=feats.device).unsqueeze(0) < lengths.unsqueeze(1)
        return outputs, last, valid

    @property
    def has_attention(self) -> bool:
        return self.time_attention is not None or self.feature_attention is not None

    @torch.jit.unused
    def attention(self, feats: Tensor, lengths: Tensor) -> Dict[str, Optional[Tensor]]:
        """What the attention stages computed for these inputs, beside the logits of
        :meth:`forward` (the same computation, so the same values):

        - ``logits`` (B, classes);
        - ``valid`` (B, T'): the model's steps holding audio, T' = ceil(T / frame_stack);
          step i covers input frames [i k, (i + 1) k) with k = ``frame_stack``;
        - ``time`` (B, T') or None: s_T, summing to 1 over the valid steps, 0 on padding;
        - ``feature`` (B, T', H) or None: s_F, each step's weights over the encoder's
          H outputs (not over the input descriptors: see ser/explain.py for those);
        - ``time_pooled``, ``feature_pooled`` (B, H) or None: the two pooled vectors
          the head reads.
        """
        outputs, last, valid = self._encode(feats, lengths)
        result: Dict[str, Optional[Tensor]] = {"valid": valid, "time": None, "feature": None,
                                               "time_pooled": None, "feature_pooled": None}
        pooled: List[Tensor] = []
        if self.time_attention is not None:
            result["time"] = self.time_attention.weights(outputs, last, valid)
            pooled.append(self.time_attention(outputs, last, valid))
            result["time_pooled"] = pooled[-1]
        if self.feature_attention is not None:
            result["feature"] = self.feature_attention.weights(outputs)
            pooled.append(self.feature_attention(outputs, valid))
            result["feature_pooled"] = pooled[-1]
        if len(pooled) == 0:
            pooled.append(last)
        result["logits"] = self.head(torch.cat(pooled, dim=1))
        return result

    def _stack_frames(self, feats: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
        """(B, T, D) -> (B, ceil(T / k), kD); frames past a length are zeroed first, so
        whatever pads a batch, an utterance's last stacked frame is the same as alone."""
        k = self.frame_stack
        batch, frames, dim = feats.size(0), feats.size(1), feats.size(2)
        valid = torch.arange(frames, device=feats.device).unsqueeze(0) < lengths.unsqueeze(1)
        feats = feats * valid.unsqueeze(2).to(feats.dtype)
        stacked = (frames + k - 1) // k
        feats = nn.functional.pad(feats, [0, 0, 0, stacked * k - frames])
        return feats.reshape(batch, stacked, k * dim), torch.div(lengths + k - 1, k, rounding_mode="floor")

    def _check_inputs(self, feats: Tensor, lengths: Tensor) -> None:
        if feats.dim() != 3 or feats.size(2) != self.input_dim:
            raise ValueError(f"feats must be (batch, frames, {self.input_dim}), got {feats.shape}")
        if lengths.dim() != 1 or lengths.size(0) != feats.size(0):
            raise ValueError(f"lengths must be ({feats.size(0)},), got {lengths.shape}")
        if bool((lengths < 1).any()) or bool((lengths > feats.size(1)).any()):
            raise ValueError(
                f"lengths must be in [1, {feats.size(1)}], got min {int(lengths.min())} max {int(lengths.max())}"
            )


# Options of every variant; the LSTM-AT and feature-attention variants add their own.
_COMMON_OPTIONS = ("hidden_size", "num_layers", "fc_dim", "dropout", "input_dropout", "rnn_dropout", "frame_stack")
_GATE_OPTIONS = ("gate_size", "forget_bias", "peephole")
_FEATURE_OPTIONS = ("attention_size",)


def build_model(input_dim: int, num_classes: int, variant: str, **options: Any) -> SERModel:
    """Builds one of :data:`MODEL_VARIANTS` (see the module docstring).

    Args:
        input_dim: D, features per frame.
        num_classes: number of emotions (logits; the softmax is in the loss).
        variant: one of MODEL_VARIANTS.
        options: override conf/model/<variant>.yaml (with its base), which holds every default:
            hidden_size, num_layers: H and depth of the recurrent encoder.
            fc_dim: hidden width of the MLP head.
            dropout: before each FC layer of the head.
            input_dropout: on the input frames (after frame stacking).
            rnn_dropout: on the outputs of each recurrent layer but the last.
            frame_stack: k frames concatenated into one (1: off).
            gate_size: LSTM-AT only; rows of W_f in the attention gate (null: H).
            forget_bias: LSTM-AT only; initial b_f of the attention gate.
            peephole: LSTM-AT only; o_t also sees c_t (diagonal weight).
            attention_size: feature attention only; columns of W_F (null: H).

    An option that does not apply to ``variant`` is an error. ``model.config`` holds
    the resolved arguments: ``build_model(**model.config)`` rebuilds the same model.
    """
    if variant not in _VARIANT_LAYOUT:
        raise ValueError(f"unknown model variant {variant!r}; expected one of {MODEL_VARIANTS}")
    cell, _, use_feature = _VARIANT_LAYOUT[variant]
    allowed = _COMMON_OPTIONS + (_GATE_OPTIONS if cell == "attention_gate" else ()) \
        + (_FEATURE_OPTIONS if use_feature else ())
    for name in options:
        if name in allowed:
            continue
        if name in _GATE_OPTIONS:
            raise ValueError(f"{name} applies to the LSTM-AT variants, not {variant!r}")
        if name in _FEATURE_OPTIONS:
            raise ValueError(f"{name} applies to the feature-attention variants, not {variant!r}")
        raise TypeError(f"build_model() got an unknown option {name!r}; {variant} takes {', '.join(allowed)}")
    defaults = {k: v for k, v in load_model_config(variant).items() if k != "variant"}
    missing = [name for name in allowed if name not in defaults]
    if missing or set(defaults) - set(allowed):
        raise ValueError(f"{CONF_DIR / variant}.yaml must set exactly {', '.join(allowed)}; "
                         f"missing {missing}, unknown {sorted(set(defaults) - set(allowed))}")
    config: Dict[str, Any] = dict(input_dim=input_dim, num_classes=num_classes, variant=variant)
    config.update({**defaults, **options})
    for name in ("gate_size", "attention_size"):
        if name in config and config[name] is None:
            config[name] = config["hidden_size"]
    for name in ("input_dim", "num_classes", "hidden_size", "num_layers", "fc_dim", "frame_stack",
                 "gate_size", "attention_size"):
        value = config.get(name, 1)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    for name in ("dropout", "input_dropout", "rnn_dropout"):
        if not 0.0 <= config[name] < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {config[name]!r}")
        config[name] = float(config[name])
    if cell == "attention_gate":
        config.update(forget_bias=float(config["forget_bias"]), peephole=bool(config["peephole"]))
    return SERModel(config)
