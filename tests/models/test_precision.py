"""The dtypes each part of the model computes in, under bf16 autocast and in float32.

On a CPU autocast leaves the GRU and softmax alone anyway; on a GPU (scripts/gpu_check.sh runs
this file there) the same assertions check the choices against CUDA's autocast.
"""

import pytest
import torch

from butd.models import ModelConfig, build_model
from butd.models.language import QuestionEncoder
from butd.models.precision import GRU_DTYPE_UNDER_AUTOCAST

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

NTOKEN, V_DIM, NUM_ANS, K, T = 30, 12, 7, 5, 6
PARTS = ("w_emb", "q_encoder.rnn", "q_encoder", "attention", "q_net", "v_net", "classifier")


def _model(**cfg) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(num_hid=16, emb_dim=8, **cfg)
    return build_model(cfg, ntoken=NTOKEN, v_dim=V_DIM, num_answers=NUM_ANS)


def _inputs(device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    v = torch.rand(3, K, V_DIM, generator=g).half()  # as the feature stores hand it over
    q = torch.randint(0, NTOKEN + 1, (3, T), generator=g)
    return v.to(device), q.to(device), torch.rand(3, K, 6, generator=g).to(device)


def _dtypes(model: torch.nn.Module, *args) -> tuple[dict[str, tuple], torch.Tensor]:
    """Each part's first input dtype and output dtype over one forward pass."""
    seen: dict[str, tuple] = {}

    def record(name: str):
        def hook(module, inputs, out) -> None:
            first = out[0] if isinstance(out, tuple) else out
            seen.setdefault(name, (inputs[0].dtype, first.dtype))

        return hook

    handles = [model.get_submodule(name).register_forward_hook(record(name)) for name in PARTS]
    try:
        logits = model(*args)
    finally:
        for h in handles:
            h.remove()
    return seen, logits


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("use_spatial", [False, True])
def test_bf16_autocast_runs_each_part_in_the_chosen_dtype(use_spatial, device):
    model = _model(use_spatial=use_spatial).to(device)
    with torch.autocast(device, dtype=torch.bfloat16):
        seen, logits = _dtypes(model, *_inputs(device))
    bf16, fp32 = torch.bfloat16, torch.float32
    assert seen["w_emb"][1] == fp32  # embedding lookups are not autocast
    assert seen["q_encoder.rnn"] == (GRU_DTYPE_UNDER_AUTOCAST, GRU_DTYPE_UNDER_AUTOCAST) == (fp32, fp32)
    assert seen["q_encoder"][1] == fp32
    # float16 features are cast once, at the model's entry, to autocast's dtype
    assert seen["attention"][0] == bf16
    assert seen["v_net"] == (bf16, bf16)  # the attended vector, not a float32 product
    assert seen["q_net"] == (fp32, bf16)  # the GRU's float32 output, cast by the first linear layer
    assert seen["classifier"][1] == bf16 and logits.dtype == bf16
    logits.float().sum().backward()
    assert all(p.grad.dtype == fp32 for p in model.parameters() if p.grad is not None)
    assert model.q_encoder.rnn.weight_hh_l0.grad.abs().sum() > 0


def test_float32_runs_float16_features_exactly_as_float32_ones():
    """Without autocast the only cast is the features' own: the stores' float16 changes no number."""
    model = _model().eval()
    v, q, b = _inputs()
    seen, logits = _dtypes(model, v, q, b)
    assert {out for _, out in seen.values()} == {torch.float32}
    assert seen["attention"][0] == torch.float32
    assert torch.equal(logits, model(v.float(), q, b))


@pytest.mark.parametrize("device", DEVICES)
def test_the_gru_computes_in_float32_whatever_dtype_reaches_it(device):
    encoder = QuestionEncoder(8, 16).to(device)
    w = torch.rand(3, T, 8, device=device, dtype=torch.bfloat16)
    with torch.autocast(device, dtype=torch.bfloat16):
        out = encoder(w)
    assert out.dtype == GRU_DTYPE_UNDER_AUTOCAST == torch.float32
    assert torch.allclose(out, encoder(w.float()))
