"""Velamala & Rawat, "Multilabel Classification on Celebrity Face Attributes Using Deep Learning
Techniques": ResNet50 vs DenseNet121 on a 29,500-image CelebA sample. See README.md.

``from celeba_resnet_densenet import predict`` gives the paper's ``predict(image)`` (loaded lazily,
so importing the package does not import torch)."""
from __future__ import annotations

__all__ = ["predict"]


def __getattr__(name: str):
    if name == "predict":
        from celeba_resnet_densenet.inference import predict

        return predict
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
