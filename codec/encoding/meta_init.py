"""Meta-learned starting weights for the SIREN fit (Reptile, trained by codec.encoding.train_init).

A packaged init is an ``.npz`` in ``codec/encoding/inits/`` named by the network it fits
(``siren_c{channels}_w{width}_l{layers}.npz``), holding the tensors in file order (``t0``, ``t1``, …)
and ``omega0``. The encoder starts its first fitting attempt from it when the planned network has
one (``EncoderConfig.init="meta"``); the file still stores the final weights, so decoding needs
no init.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

INIT_DIR = Path(__file__).parent / "inits"


def init_name(channels: int, hidden_width: int, hidden_layers: int) -> str:
    return f"siren_c{channels}_w{hidden_width}_l{hidden_layers}.npz"


@lru_cache(maxsize=16)
def _load(path: str) -> tuple[float, tuple[np.ndarray, ...]]:
    with np.load(path) as data:
        tensors = tuple(data[f"t{i}"].astype(np.float32) for i in range(sum(k.startswith("t") for k in data.files)))
        return float(data["omega0"]), tensors


def find_init(channels: int, hidden_width: int, hidden_layers: int, omega0: float,
              directory: Path | None = None) -> tuple[np.ndarray, ...] | None:
    """The packaged tensors for this network (file order), or None if there is none for it."""
    path = Path(directory or INIT_DIR) / init_name(channels, hidden_width, hidden_layers)
    if not path.is_file():
        return None
    stored_omega0, tensors = _load(str(path))
    if abs(stored_omega0 - omega0) > 1e-6:
        return None
    return tensors


def available_inits(directory: Path | None = None) -> list[str]:
    """File names of the packaged inits."""
    return sorted(p.name for p in Path(directory or INIT_DIR).glob("siren_*.npz"))
