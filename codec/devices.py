"""Resolving the --device option."""
from __future__ import annotations

import torch

from .errors import OptionError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str | None) -> torch.device:
    """'auto' (or None) -> CUDA when available, else CPU. 'cuda' without a GPU is an OptionError."""
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
