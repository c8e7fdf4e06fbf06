"""Meta-learned inits: the Reptile script writes what codec.encoding.meta_init loads, and the encoder starts from it."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import bitstream
import codec.encoding.meta_init as meta_init
from codec.encoding import train_init
from codec.config import EncoderConfig, MlpSettings
from codec.encoding import encode_pixels
from codec.encoding.mlp import new_network
from codec.errors import OptionError

from conftest import smooth_image


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = tmp_path_factory.mktemp("train")
    for k in range(3):
        Image.fromarray(smooth_image(24, 36, 3, seed=20 + k)).save(data / f"img{k}.png")
    out = tmp_path_factory.mktemp("inits")
    train_init.main(["--width", "12", "--layers", "2", "--iterations", "6", "--inner-steps", "5", "--held-out", "1",
                     "--eval-every", "3", "--batch", "256", "--data", str(data), "--out", str(out)])
    return out


def test_training_writes_a_loadable_init_and_is_reproducible(trained, tmp_path):
    path = trained / "siren_c3_w12_l2.npz"
    tensors = meta_init.find_init(3, 12, 2, 30.0, directory=trained)
    assert tensors is not None and [t.shape for t in tensors] == [tuple(s) for s in bitstream.tensor_shapes(bitstream.SIREN, 12, 2, 3)]
    assert meta_init.find_init(3, 12, 2, 20.0, directory=trained) is None  # another omega0
    assert meta_init.find_init(3, 13, 2, 30.0, directory=trained) is None  # no file for this network
    again = tmp_path / "again"
    src = next(p for p in trained.parent.iterdir() if p.name.startswith("train"))
    train_init.main(["--width", "12", "--layers", "2", "--iterations", "6", "--inner-steps", "5", "--held-out", "1",
                     "--eval-every", "3", "--batch", "256", "--data", str(src), "--out", str(again)])
    with np.load(path) as a, np.load(again / path.name) as b:
        assert all(np.array_equal(a[f"t{i}"], b[f"t{i}"]) for i in range(6))


def test_encoder_starts_from_the_meta_init(trained, monkeypatch):
    monkeypatch.setattr(meta_init, "INIT_DIR", trained)
    config = EncoderConfig(mlp=MlpSettings(hidden_width=12, hidden_layers=2, bits=8), steps=60, device="cpu", init="meta")
    model, init = new_network(bitstream.SIREN, (36, 24, 3, 12, 2, 30.0), 0, "cpu", meta=True)
    assert init == "meta"
    for p, t in zip(model.parameters_in_file_order(), meta_init.find_init(3, 12, 2, 30.0)):
        assert np.array_equal(p.detach().numpy(), t)
    pixels = smooth_image(24, 36, 3, seed=9)
    result = encode_pixels(pixels, config)
    plain = encode_pixels(pixels, EncoderConfig(mlp=MlpSettings(hidden_width=12, hidden_layers=2, bits=8), steps=60, device="cpu"))
    assert result.init == "meta" and plain.init == "random" and plain.data != result.data


def test_meta_without_a_packaged_init_falls_back_to_random(tmp_path, monkeypatch):
    monkeypatch.setattr(meta_init, "INIT_DIR", tmp_path)
    result = encode_pixels(smooth_image(24, 36, 3), EncoderConfig(mlp=MlpSettings(hidden_width=12, hidden_layers=2, bits=8), steps=20,
                                                                  device="cpu", init="meta"))
    assert result.init == "random"


def test_init_option_is_checked():
    with pytest.raises(OptionError, match="init"):
        EncoderConfig(init="learned").validated()
