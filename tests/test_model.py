"""Tests of ser/model.py and ser/attention_lstm.py (small sizes; about 15 s on 2 CPU cores)."""

import io

import pytest
import torch

from ser.attention_lstm import AttentionGateLSTMLayer, AttentionGateRecurrence, attention_gate_scan
from ser.errors import SerError
from ser.model import MODEL_VARIANTS, build_model, load_model_config

SMALL = dict(hidden_size=12, num_layers=2, fc_dim=8)


def small_model(variant: str, input_dim: int = 5, **options) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(input_dim=input_dim, num_classes=6, variant=variant, **{**SMALL, **options}).eval()


def recurrence_inputs(peephole: bool, dtype=torch.float64, steps=5, batch=3, hidden=4, gate=3):
    """x_proj, weight_hh, weight_f, weight_vf, bias_f, peephole of AttentionGateRecurrence."""
    torch.manual_seed(0)
    shapes = [(steps, batch, 2 * hidden), (2 * hidden, hidden), (gate, hidden), (hidden, gate), (hidden,)]
    tensors = [torch.randn(shape, dtype=dtype, requires_grad=True) for shape in shapes]
    return tensors + [torch.randn(hidden, dtype=dtype, requires_grad=True) if peephole else None]


@pytest.mark.parametrize("peephole", [False, True])
def test_cell_step_matches_equations(peephole):
    torch.manual_seed(0)
    input_size, hidden = 3, 4
    layer = AttentionGateLSTMLayer(input_size, hidden, gate_size=5, forget_bias=1.0, peephole=peephole)
    x = torch.randn(2, 1, input_size)
    with torch.no_grad():
        h = layer(x)[:, 0]
    # W_c, W_o act on [h_{t-1}, x_t]; step 2 starts from the nonzero state of step 1.
    w_x, b_x = layer.input_proj.weight, layer.input_proj.bias
    w_c = torch.cat([layer.weight_hh[:hidden], w_x[:hidden]], dim=1)
    w_o = torch.cat([layer.weight_hh[hidden:], w_x[hidden:]], dim=1)
    h_prev, c_prev = torch.zeros(hidden), torch.zeros(hidden)
    expected = []
    with torch.no_grad():
        for x_t in x[:, 0]:
            f = torch.sigmoid(layer.weight_vf @ torch.tanh(layer.weight_f @ c_prev) + layer.bias_f)
            c = f * c_prev + (1 - f) * torch.tanh(w_c @ torch.cat([h_prev, x_t]) + b_x[:hidden])
            o_pre = w_o @ torch.cat([h_prev, x_t]) + b_x[hidden:]
            o = torch.sigmoid(o_pre + layer.peephole * c if peephole else o_pre)
            h_prev, c_prev = o * torch.tanh(c), c
            expected.append(h_prev)
    torch.testing.assert_close(h, torch.stack(expected), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("peephole", [False, True])
def test_recurrence_gradcheck(peephole):
    assert torch.autograd.gradcheck(AttentionGateRecurrence.apply, recurrence_inputs(peephole))


@pytest.mark.parametrize("peephole", [False, True])
def test_fast_recurrence_equals_step_loop(peephole):
    inputs = recurrence_inputs(peephole, dtype=torch.float32, steps=9, batch=4, hidden=6, gate=5)
    leaves = [x for x in inputs if x is not None]
    grad_out = torch.randn(9, 4, 6)
    results = []
    for recurrence in (AttentionGateRecurrence.apply, attention_gate_scan):
        outputs = recurrence(*inputs)
        results.append((outputs, torch.autograd.grad(outputs, leaves, grad_out)))
    (fast, fast_grads), (loop, loop_grads) = results
    torch.testing.assert_close(fast, loop, atol=1e-6, rtol=1e-5)
    for fast_grad, loop_grad in zip(fast_grads, loop_grads):
        torch.testing.assert_close(fast_grad, loop_grad, atol=1e-5, rtol=1e-4)


def test_training_uses_fast_recurrence():
    model = small_model("lstm_tf_at", frame_stack=1)
    layer_output = model.encoder.layers[0](torch.randn(4, 2, 5, requires_grad=True))
    assert type(layer_output.grad_fn).__name__ == "AttentionGateRecurrenceBackward"


@pytest.mark.parametrize("variant", MODEL_VARIANTS)
def test_output_shape_with_default_config(variant):
    config = load_model_config(variant)
    assert config["variant"] == variant and config["num_layers"] == 2  # the paper's depth
    model = build_model(input_dim=93, num_classes=6, **config)
    logits = model(torch.randn(3, 11, 93), torch.tensor([11, 4, 1]))
    assert logits.shape == (3, 6) and torch.isfinite(logits).all()


def test_head_sizes_follow_pooling():
    def head_input(variant):
        return build_model(93, 6, **load_model_config(variant)).head[1].in_features

    assert head_input("lstm_tf_at") == head_input("lstm_tf") == 512
    assert {head_input(v) for v in ("lstm", "lstm_t", "lstm_f", "lstm_at", "gru")} == {256}


@pytest.mark.parametrize("variant", MODEL_VARIANTS)
def test_padding_is_invisible(variant):
    model = small_model(variant)
    torch.manual_seed(1)
    short, long = torch.randn(1, 7, 5), torch.randn(1, 13, 5)
    batch = torch.cat([torch.nn.functional.pad(short, (0, 0, 0, 6)), long])
    with torch.no_grad():
        alone = model(short, torch.tensor([7]))
        batched = model(batch, torch.tensor([7, 13]))
    torch.testing.assert_close(batched[:1], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", MODEL_VARIANTS)
def test_overfits_twenty_utterances(variant):
    torch.manual_seed(0)
    lengths = torch.randint(20, 61, (20,))
    feats = torch.randn(20, int(lengths.max()), 5)
    feats.masked_fill_((torch.arange(feats.size(1)) >= lengths[:, None]).unsqueeze(2), 0.0)
    labels = torch.randint(6, (20,))
    # Without dropout: the loop stops on training-mode logits.
    model = small_model(variant, hidden_size=32, fc_dim=32, dropout=0.0, input_dropout=0.0, rnn_dropout=0.0).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        optimizer.zero_grad()
        logits = model(feats, lengths)
        if (logits.argmax(1) == labels).all():
            break
        torch.nn.functional.cross_entropy(logits, labels).backward()
        optimizer.step()
    with torch.no_grad():
        assert (model.eval()(feats, lengths).argmax(1) == labels).all()


@pytest.mark.parametrize(
    "feats, lengths, message",
    [
        (torch.randn(2, 8, 4), torch.tensor([8, 3]), "feats must be"),
        (torch.randn(8, 5), torch.tensor([8]), "feats must be"),
        (torch.randn(2, 8, 5), torch.tensor([8, 0]), "lengths must be in"),
        (torch.randn(2, 8, 5), torch.tensor([9, 3]), "lengths must be in"),
        (torch.randn(2, 8, 5), torch.tensor([8]), "lengths must be"),
    ],
)
def test_bad_inputs_raise(feats, lengths, message):
    with pytest.raises(ValueError, match=message):
        small_model("lstm_tf_at")(feats, lengths)


@pytest.mark.parametrize("variant", ["lstm_tf_at", "gru"])
@pytest.mark.parametrize("frame_stack", [2, 3])
def test_frame_stacking_keeps_padding_invisible(variant, frame_stack):
    model = small_model(variant, frame_stack=frame_stack)
    torch.manual_seed(1)
    short, long = torch.randn(1, 7, 5), torch.randn(1, 13, 5)
    # Whatever pads the batch (not only zeros) must not reach the short utterance.
    batch = torch.cat([torch.cat([short, torch.full((1, 6, 5), 3.0)], dim=1), long])
    with torch.no_grad():
        alone = model(short, torch.tensor([7]))
        batched = model(batch, torch.tensor([7, 13]))
    torch.testing.assert_close(batched[:1], alone, atol=1e-5, rtol=1e-5)


def test_frame_stacking_concatenates_consecutive_frames():
    model = small_model("lstm", input_dim=2, frame_stack=3)
    feats = torch.arange(14.0).reshape(1, 7, 2)
    stacked, lengths = model._stack_frames(feats, torch.tensor([7]))
    assert stacked.shape == (1, 3, 6) and lengths.tolist() == [3]
    assert stacked[0, 1].tolist() == [6.0, 7.0, 8.0, 9.0, 10.0, 11.0]
    assert stacked[0, 2].tolist() == [12.0, 13.0, 0.0, 0.0, 0.0, 0.0]  # zero-padded to a whole step
    assert model.encoder.rnn.input_size == 6


def test_defaults_come_from_the_variant_yaml(tmp_path, monkeypatch):
    yaml_config = load_model_config("lstm_tf_at")
    model = build_model(93, 6, "lstm_tf_at")
    for name, value in yaml_config.items():
        if value is not None:
            assert model.config[name] == value, name
    assert model.config["gate_size"] == model.config["attention_size"] == model.config["hidden_size"]
    assert build_model(93, 6, "lstm_tf_at", hidden_size=16).config["gate_size"] == 16  # null: H
    (tmp_path / "lstm.yaml").write_text("variant: lstm\nhidden_size: 8\n")
    monkeypatch.setattr("ser.config.MODEL_CONF_DIR", tmp_path)  # where load_model_config reads
    with pytest.raises(ValueError, match="must set exactly"):
        build_model(93, 6, "lstm")


@pytest.mark.parametrize("variant", ["lstm_tf_at", "lstm_tf"])
def test_recurrent_dropout_is_active_in_training_only(variant):
    model = small_model(variant, rnn_dropout=0.5, input_dropout=0.5)
    feats, lengths = torch.randn(2, 9, 5), torch.tensor([9, 5])
    with torch.no_grad():
        assert torch.equal(model(feats, lengths), model(feats, lengths))  # eval: deterministic
        model.train()
        torch.manual_seed(0)
        first = model(feats, lengths)
        torch.manual_seed(1)
        assert not torch.equal(first, model(feats, lengths))


def test_bad_configs_raise():
    with pytest.raises(ValueError, match="unknown model variant"):
        build_model(93, 6, variant="transformer")
    with pytest.raises(TypeError, match="hiden_size"):
        build_model(93, 6, variant="lstm", hiden_size=256)
    with pytest.raises(ValueError, match="LSTM-AT"):
        build_model(93, 6, variant="lstm_tf", peephole=True)
    with pytest.raises(ValueError, match="feature-attention"):
        build_model(93, 6, variant="lstm_at", attention_size=64)
    with pytest.raises(ValueError, match="hidden_size"):
        build_model(93, 6, variant="lstm", hidden_size=0)
    with pytest.raises(ValueError, match="frame_stack"):
        build_model(93, 6, variant="lstm", frame_stack=0)
    with pytest.raises(ValueError, match="rnn_dropout"):
        build_model(93, 6, variant="gru", rnn_dropout=1.0)
    with pytest.raises(SerError, match="variants"):
        load_model_config("no_such_variant")


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("variant", MODEL_VARIANTS)
def test_config_round_trip_and_torchscript_export(variant):
    options = dict(frame_stack=2, rnn_dropout=0.2, input_dropout=0.1)
    if variant.endswith("_at"):
        options.update(peephole=True, gate_size=7)
    model = small_model(variant, **options)
    rebuilt = build_model(**model.config).eval()
    assert rebuilt.config == model.config
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    rebuilt.load_state_dict(model.state_dict())

    torch.manual_seed(2)
    feats, lengths = torch.randn(3, 10, 5), torch.tensor([10, 6, 1])
    scripted = torch.jit.script(model)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    exported = torch.jit.load(buffer)
    traced = torch.jit.trace(model, (feats, lengths))
    other_feats, other_lengths = torch.randn(2, 14, 5), torch.tensor([9, 14])  # a trace must not freeze T
    with torch.no_grad():
        for x, n in ((feats, lengths), (other_feats, other_lengths)):
            expected = model(x, n)
            torch.testing.assert_close(rebuilt(x, n), expected)
            torch.testing.assert_close(exported(x, n), expected, atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(traced(x, n), expected, atol=1e-6, rtol=1e-5)
