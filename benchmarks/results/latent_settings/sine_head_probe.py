"""Scratch: the latent_settings run with a sine synthesis head (fit and torch decode), sin(OMEGA * x) in place of relu.
OMEGA=0 keeps relu but still decodes with torch (the like-for-like baseline)."""
import os, sys, types, functools, torch
from torch.nn import functional as F
import codec.latentgrid as lg
import benchmarks.latent_settings as ls
from codec.decoder import decode_array
OMEGA = float(os.environ.get("OMEGA", "1"))
if OMEGA:
    lg.F = types.SimpleNamespace(linear=F.linear, grid_sample=F.grid_sample, relu=lambda x: torch.sin(OMEGA * x))
ls.decode_array = functools.partial(decode_array, backend="torch")
raise SystemExit(ls.main(sys.argv[1:]))
