"""The paper's 1D ResNet-18 against the published architecture (Lolla et al. 2022; usnistgov/semi-supervised-neutron
Models/ResNet.py with the trainers' configuration)."""

from __future__ import annotations

import pytest
import torch

from powdersym.models import build_model, count_parameters, resnet1d
from powdersym.models.layers import ChannelLayerNorm
from powdersym.models.resnet1d import BasicBlock1d


def published_parameter_count(n_classes: int) -> int:
    """Parameters of the published network, counted from its description: bias-free convs, affine LayerNorms
    (2 per channel), a 1x1 conv + LN shortcut in every block, Linear(64, n_classes)."""

    def block(c_in: int, c_out: int, k: int) -> int:
        return c_in * c_out * k + 2 * c_out + c_out * c_out * k + 2 * c_out + c_in * c_out + 2 * c_out

    stem = 1 * 32 * 13 + 2 * 32
    layers = (block(32, 32, 5) * 2 + block(32, 64, 7) + block(64, 64, 7) + block(64, 64, 17) * 2
              + block(64, 64, 13) * 2)  # fmt: skip
    return stem + layers + 64 * n_classes + n_classes


@pytest.mark.parametrize("n_classes", [14, 144])
def test_parameter_count_matches_published_architecture(n_classes):
    model = resnet1d(n_classes)
    assert count_parameters(model) == published_parameter_count(n_classes)
    # The paper says "about 0.65 M"; measured 641 006 (14 classes) and 649 456 (144).
    assert 0.63e6 < count_parameters(model) < 0.66e6


@pytest.mark.parametrize("n_points", [3041, 5200, 8501])
def test_logits_shape_for_instrument_lengths(n_points):
    model = build_model("resnet1d", 144, n_points).eval()
    with torch.no_grad():
        assert model(torch.rand(2, n_points)).shape == (2, 144)
        assert model(torch.rand(2, 1, n_points)).shape == (2, 144)
        assert model.features(torch.rand(2, n_points)).shape == (2, model.n_features) == (2, 64)


def test_layer_lengths_follow_strides():
    # Stem without padding: P - 12; each layer ceil(L / stride): 3041 -> 3029 -> 758 -> 190 -> 38 -> 13.
    model = resnet1d(14).eval()
    lengths = []
    x = model.stem(torch.rand(1, 1, 3041))
    lengths.append(x.shape[-1])
    for layer in model.layers:
        x = layer(x)
        lengths.append(x.shape[-1])
    assert lengths == [3029, 758, 190, 38, 13]


def test_published_stem_pool_exists_and_is_not_called():
    model = resnet1d(14).eval()
    assert isinstance(model.maxpool, torch.nn.MaxPool1d)
    assert model.maxpool.kernel_size == 7 and model.maxpool.stride == 7
    calls = []
    model.maxpool.register_forward_hook(lambda *args: calls.append(1))
    model(torch.rand(1, 3041))
    assert calls == []
    pooled = resnet1d(14, stem_pool=True).eval()
    pooled.maxpool.register_forward_hook(lambda *args: calls.append(1))
    pooled(torch.rand(1, 3041))
    assert calls == [1]


def test_every_block_has_projection_shortcut_and_paper_kernels():
    model = resnet1d(14)
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock1d)]
    assert len(blocks) == 8
    assert all(b.shortcut[0].kernel_size == (1,) for b in blocks)
    assert [b.conv1[0].kernel_size[0] for b in blocks] == [5, 5, 7, 7, 17, 17, 13, 13]
    assert [b.conv1[0].stride[0] for b in blocks] == [4, 1, 4, 1, 5, 1, 3, 1]
    assert all(b.conv1[0].bias is None for b in blocks)
    dropouts = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(dropouts) == 17 and set(dropouts) == {0.05}  # stem + 2 per block
    assert {m.p for m in resnet1d(14, dropout=0.1).modules() if isinstance(m, torch.nn.Dropout)} == {0.1}


def test_even_kernel_is_refused():
    with pytest.raises(ValueError, match="odd"):
        resnet1d(14, kernels=(4, 7, 17, 13))


def test_channel_layer_norm_normalises_each_position_over_channels():
    torch.manual_seed(0)
    norm = ChannelLayerNorm(5)
    x = torch.randn(2, 5, 7, dtype=torch.float64)
    norm = norm.double()
    mean = x.mean(1, keepdim=True)
    var = ((x - mean) ** 2).mean(1, keepdim=True)
    torch.testing.assert_close(norm(x), (x - mean) / torch.sqrt(var + norm.eps))
