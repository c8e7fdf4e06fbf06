"""The `.inr` file format: header, framing, validation and entropy coding. Does not import torch.

See FORMAT.md in this folder for the byte-level specification.
"""
from .architectures import ARCHITECTURES, BICUBIC, BILINEAR, LATENT, POLY, SIREN, LatentGrid, layer_sizes, multiply_adds, parameter_count, tensor_shapes
from .container import MAGIC, VERSION, dequantize, read_file, read_header, write_file
from .entropy import HISTOGRAM, LAPLACE, SPARSE_LAPLACE, ZERO, TensorModel, choose_model
from .errors import InrFormatError
from .header import (DEFAULT_MAX_LATENTS_PER_PIXEL, DEFAULT_MAX_PARAMETERS, DEFAULT_MAX_PIXELS, Header, TensorRecord,
                     check_network_size, latent_limit, network_fits)

__all__ = [
    "ARCHITECTURES", "BICUBIC", "BILINEAR", "DEFAULT_MAX_LATENTS_PER_PIXEL", "DEFAULT_MAX_PARAMETERS", "DEFAULT_MAX_PIXELS", "HISTOGRAM", "LAPLACE", "LATENT", "LatentGrid", "MAGIC", "POLY", "SIREN", "SPARSE_LAPLACE", "VERSION", "ZERO",
    "Header", "InrFormatError", "TensorModel", "TensorRecord", "check_network_size", "choose_model", "dequantize",
    "latent_limit", "network_fits",
    "layer_sizes", "multiply_adds", "parameter_count", "read_file", "read_header", "tensor_shapes", "write_file",
]
