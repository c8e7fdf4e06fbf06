"""Resolving the --device option. torch is imported only when a device is resolved."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import OptionError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str | None) -> "torch.device":
    """'auto' (or None) -> CUDA when available, else CPU. 'cuda' without a GPU is an OptionError."""
    import torch

    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise OptionError("--device cuda was asked for, but no CUDA GPU is available")
        return torch.device(name)
    raise OptionError(f"unknown device {name!r}: choose one of {', '.join(DEVICE_CHOICES)}")
