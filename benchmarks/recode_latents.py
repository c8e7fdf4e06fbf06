"""Recode the latent grids of `.inr` files with each entropy model the format offers them, same symbols.

    python -m benchmarks.recode_latents FILE.inr [FILE.inr ...] [--json OUT]

For every grid of a latent-grid file (architecture 3): its bytes as stored, and its payload plus
header bytes under the best plain model, ROW_CONTEXT, ROW_PREDICT, NEIGHBOUR_CONTEXT and
NEIGHBOUR_PREDICT (`bitstream.entropy`), then the
whole file rewritten with today's chooser. Shows what an entropy model buys on real trained latents
without retraining anything.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import bitstream
from bitstream.entropy import (
    MODEL_NAMES, NEIGHBOUR_CONTEXT, NEIGHBOUR_PREDICT, PLAIN_KINDS, ROW_CONTEXT, ROW_PREDICT, choose_model,
    header_bytes, measure_bits,
)

#: the candidates per grid: (result key, the kinds choose_model may pick from)
CANDIDATES = (("plain", PLAIN_KINDS), ("row_context", PLAIN_KINDS + (ROW_CONTEXT,)),
              ("row_predict", PLAIN_KINDS + (ROW_PREDICT,)), ("neighbour_context", PLAIN_KINDS + (NEIGHBOUR_CONTEXT,)),
              ("neighbour_predict", PLAIN_KINDS + (NEIGHBOUR_PREDICT,)))


def _bytes(symbols, model) -> float:
    return (measure_bits(symbols, model) + 8 * (1 + header_bytes(model))) / 8


def recode(path: Path) -> dict:
    """Per-grid and whole-file sizes of one file under each model."""
    data = path.read_bytes()
    header, symbols = bitstream.read_file(data)
    if header.arch != bitstream.LATENT:
        raise SystemExit(f"{path}: not a latent-grid file (architecture {header.arch})")
    grids = []
    for level, (rec, q) in enumerate(zip(header.tensors[: header.latent_levels], symbols)):
        row = {"level": level, "stored_model": MODEL_NAMES[rec.model.kind], "stored_bytes": _bytes(q, rec.model)}
        if q.any():
            for name, kinds in CANDIDATES:
                model = choose_model(q, kinds=kinds)
                row[name] = {"model": MODEL_NAMES[model.kind], "bytes": _bytes(q, model)}
        grids.append(row)
    records = tuple(bitstream.TensorRecord(rec.step, choose_model(q)) for rec, q in zip(header.tensors, symbols))
    rewritten = bitstream.write_file(dataclasses.replace(header, tensors=records), symbols)
    assert all((a == b).all() for a, b in zip(bitstream.read_file(rewritten)[1], symbols))
    return {"file": str(path), "bytes": len(data), "version": data[4], "recoded_bytes": len(rewritten),
            "recoded_version": rewritten[4], "grids": grids}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recode_latents", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    results = [recode(p) for p in args.files]
    for r in results:
        print(f"{r['file']}: {r['bytes']} bytes (version {r['version']}) -> {r['recoded_bytes']} recoded "
              f"(version {r['recoded_version']}, {100 * (r['recoded_bytes'] / r['bytes'] - 1):+.1f} %)")
        for g in r["grids"]:
            if "plain" in g:
                print(f"  grid {g['level']}: stored {g['stored_model']} {g['stored_bytes']:.0f} B; plain "
                      f"{g['plain']['bytes']:.0f}, row-context {g['row_context']['bytes']:.0f}, "
                      f"row-predict {g['row_predict']['bytes']:.0f} ({g['row_predict']['model']}), neighbour-context "
                      f"{g['neighbour_context']['bytes']:.0f}, neighbour-predict {g['neighbour_predict']['bytes']:.0f} "
                      f"({g['neighbour_predict']['model']})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
