"""celeba_resnet_densenet: the paper's head on torchvision backbones, local pretrained weights."""
from __future__ import annotations

import re

import pytest
import torch
import torchvision
from torch import nn

from celeba_resnet_densenet.models import AttributeClassifier


@pytest.mark.parametrize("backbone, feature_width", [("resnet50", 2048), ("densenet121", 1024)])
def test_head_is_512_units_dropout_40_logits(backbone, feature_width):
    model = AttributeClassifier(backbone, num_features=512, dropout=0.5)
    linear_in, activation, dropout, linear_out = model.head
    assert (linear_in.in_features, linear_in.out_features) == (feature_width, 512)
    assert isinstance(activation, nn.ReLU) and dropout.p == 0.5
    assert (linear_out.in_features, linear_out.out_features) == (512, 40)
    model.eval()
    logits = model(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 40)
    probabilities = model.probabilities(torch.randn(2, 3, 64, 64))
    assert ((probabilities >= 0) & (probabilities <= 1)).all()


def test_resnet50_loads_a_local_torchvision_state_dict(tmp_path):
    torch.manual_seed(1)
    source = torchvision.models.resnet50(weights=None)
    path = tmp_path / "resnet50-imagenet.pth"
    torch.save(source.state_dict(), path)  # includes the ImageNet fc, which must be skipped
    model = AttributeClassifier("resnet50", pretrained_weights=path)
    torch.testing.assert_close(model.backbone.conv1.weight, source.conv1.weight)
    torch.testing.assert_close(model.backbone.layer4[2].bn3.running_var, source.layer4[2].bn3.running_var)


def test_densenet121_loads_old_style_keys(tmp_path):
    """torchvision's published DenseNet files name ``norm1`` ``norm.1`` (pre-0.4 layout)."""
    torch.manual_seed(2)
    source = torchvision.models.densenet121(weights=None)
    old_style = {re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", key): value
                 for key, value in source.state_dict().items()}
    assert any(".norm.1." in key for key in old_style)
    path = tmp_path / "densenet121-old.pth"
    torch.save({"state_dict": old_style}, path)
    model = AttributeClassifier("densenet121", pretrained_weights=path)
    torch.testing.assert_close(model.backbone.features.denseblock3.denselayer7.conv2.weight,
                               source.features.denseblock3.denselayer7.conv2.weight)


def test_wrong_weights_file_is_named_in_the_error(tmp_path):
    path = tmp_path / "densenet.pth"
    torch.save(torchvision.models.densenet121(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match="densenet.pth: not a torchvision ResNet state dict"):
        AttributeClassifier("resnet50", pretrained_weights=path)
    with pytest.raises(ValueError, match="unknown backbone"):
        AttributeClassifier("vgg16")
