"""The report's CNN family: layer structure, parameter counts, initialization, the L2 penalty."""

import pytest
import torch
from torch import nn

from digitrec.errors import DigitrecError
from digitrec.models.registry import PAPER_CASES, REGISTRY, build_model, model_entry, parameter_count
from digitrec.training.loop import l2_penalty

# by hand: conv1 1*64*9+64 = 640, conv2/conv3 64*64*9+64 = 36,928 each, dense 64*64+64 = 4,160,
# 64*32+32 = 2,080, output 32*10+10 = 330; the 4-dense head adds another 64*64+64 = 4,160
PARAMS_3_DENSE = 640 + 2 * 36_928 + 4_160 + 2_080 + 330
PARAMS_4_DENSE = PARAMS_3_DENSE + 4_160


@pytest.mark.parametrize("case", range(1, 9))
def test_each_paper_case_has_three_convs_and_its_dense_layers(case):
    model = build_model(f"paper-case{case}")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    dense = [m for m in model.modules() if isinstance(m, nn.Linear)]
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    widths, has_l2, has_rotation = PAPER_CASES[case]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(64, (3, 3))] * 3 and len(pools) == 3
    assert len(dense) == len(widths) + 1 == (3 if case in (1, 3, 5, 7) else 4)
    assert parameter_count(model) == (PARAMS_3_DENSE if len(dense) == 3 else PARAMS_4_DENSE)
    defaults = model_entry(f"paper-case{case}").train_defaults
    assert (defaults["l2_first_conv"] == 0.01) == has_l2 and (defaults["rotation_deg"] == 10) == has_rotation
    assert model(torch.zeros(5, 1, 28, 28)).shape == (5, 10)


def test_paper_models_use_keras_glorot_init():
    model = build_model("paper-case1")
    conv = model.first_conv
    fan_in, fan_out = 1 * 9, 64 * 9
    bound = (6 / (fan_in + fan_out)) ** 0.5
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.8 * bound
    assert all((m.bias == 0).all() for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear))


def test_l2_penalty_matches_keras_formula_on_known_weights():
    model = build_model("paper-case3")
    with torch.no_grad():
        model.first_conv.weight.fill_(1.0)  # 64*1*3*3 = 576 weights
        model.first_conv.bias.fill_(2.0)  # 64 biases
    penalty = l2_penalty(model.regularized_parameters(), 0.01)
    assert penalty.item() == pytest.approx(0.01 * (576 * 1 + 64 * 4))


def test_shapes_follow_the_input_size():
    model = build_model("paper-case2", num_classes=3, image_size=40)
    assert model(torch.zeros(2, 1, 40, 40)).shape == (2, 3)


def test_registry_lists_all_paper_cases_and_refuses_unknown_names():
    assert {f"paper-case{i}" for i in range(1, 9)} <= set(REGISTRY)
    with pytest.raises(DigitrecError, match="unknown model 'resnet9000'"):
        build_model("resnet9000")
