"""Results files, the BD-rate table and the RD plot of a results directory."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .bdrate import BDError, bd_psnr, bd_rate, psnr_overlap

#: keys every results file must have (CompressAI's schema plus ours)
REQUIRED_RESULTS = ("bpp", "psnr", "ms-ssim", "encoding_time", "decoding_time")


def validate_result(doc: dict) -> None:
    """Raise ValueError unless ``doc`` follows the results schema."""
    for key in ("name", "description", "results", "meta", "per_image"):
        if key not in doc:
            raise ValueError(f"results file lacks {key!r}")
    res = doc["results"]
    lengths = {k: len(res.get(k, ())) for k in REQUIRED_RESULTS}
    if any(k not in res for k in REQUIRED_RESULTS):
        raise ValueError(f"results lack one of {REQUIRED_RESULTS}")
    if len(set(lengths.values())) != 1:
        raise ValueError(f"results lists differ in length: {lengths}")
    for k, values in res.items():
        if not all(isinstance(v, (int, float)) for v in values):
            raise ValueError(f"results[{k!r}] must be numbers")


def load_results(out_dir: Path) -> dict[str, dict]:
    """Every ``<codec>.json`` results file in ``out_dir``, by name."""
    docs = {}
    for path in sorted(out_dir.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
            validate_result(doc)
        except (ValueError, OSError):
            continue
        docs[doc["name"]] = doc
    return docs


def order(docs: dict[str, dict], first: list[str]) -> dict[str, dict]:
    """``docs`` with the names in ``first`` leading, in that order, then the rest."""
    keys = [k for k in dict.fromkeys(first) if k in docs] + sorted(k for k in docs if k not in first)
    return {k: docs[k] for k in keys}


def load_anchors(path: Path | None) -> dict[str, dict]:
    if path is None or not Path(path).exists():
        return {}
    return json.loads(Path(path).read_text()).get("codecs", {})


def _fmt_range(values, fmt="{:.3g}") -> str:
    return f"{fmt.format(min(values))}–{fmt.format(max(values))}" if values else "—"


#: published curves every measured codec is also compared with (names in kodak_published.json)
PUBLISHED_REFERENCES = ("JPEG", "WebP", "BPG444")


def _bd_cells(anchor: dict | None, bpp, psnr) -> list[str]:
    """[BD-rate, BD-PSNR, PSNR overlap] cells of one curve against the anchor."""
    if anchor is None or not anchor["bpp"]:
        return ["n/a (no anchor)", "", ""]
    cells = []
    for fn, fmt in ((bd_rate, lambda v: f"{100 * v:+.1f} %"), (bd_psnr, lambda v: f"{v:+.2f} dB")):
        try:
            cells.append(fmt(fn(anchor["bpp"], anchor["psnr"], bpp, psnr)))
        except BDError as exc:
            cells.append(f"n/a ({exc})")
    lo, hi = psnr_overlap(anchor["psnr"], psnr)
    cells.append(f"{lo:.1f}–{hi:.1f}" if hi > lo else "none")
    return cells


def bd_table(dataset: str, docs: dict[str, dict], anchors: dict[str, dict], anchor_name: str,
             reductions: dict | None) -> str:
    """The markdown BD-rate table of every measured codec and published anchor."""
    anchor_doc = docs.get(anchor_name)
    anchor = anchor_doc["results"] if anchor_doc else None
    lines = [
        f"# BD-rate on `{dataset}` against {anchor_name} (measured here)", "",
        "BD-rate: average rate difference at equal PSNR (RGB, mean of per-image PSNR vs mean bpp), "
        "log-rate interpolated with PCHIP and integrated over the PSNR range both curves cover "
        "(last column). Negative = fewer bits than the anchor. BD-PSNR: average PSNR gain at equal rate.",
        "",
    ]
    if reductions and any(v is not None for k, v in reductions.items() if k in ("limit", "images", "downscale")):
        lines += [f"Reductions: {json.dumps(reductions)}. Published anchors were measured on the 24 "
                  "full-resolution Kodak images, so their rows compare different data and are only indicative.", ""]
    lines += ["| codec | points | bpp range | PSNR range (dB) | BD-rate | BD-PSNR | PSNR overlap (dB) |",
              "|---|---:|---|---|---:|---:|---|"]
    notes = []
    for name, doc in docs.items():
        r = doc["results"]
        lines.append(f"| {name}: {doc['description']} | {len(r['bpp'])} | {_fmt_range(r['bpp'])} | "
                     f"{_fmt_range(r['psnr'], '{:.2f}')} | " + " | ".join(_bd_cells(anchor, r["bpp"], r["psnr"])) + " |")
        by_rate = [p for _, p in sorted(zip(r["bpp"], r["psnr"]))]
        if any(b < a for a, b in zip(by_rate, by_rate[1:])):
            notes.append(f"- {name}: PSNR does not rise with rate at every point (a worse point at a higher rate); "
                         "its BD figures use the points sorted by PSNR and should be read with care")
        wanted = (doc["meta"].get("codec_settings") or {}).get("steps")
        ran = [rec["encoder"]["steps"] for rec in doc.get("per_image", []) if "steps" in rec.get("encoder", {})]
        short = [n for n in ran if wanted and n < wanted]
        if short:
            load = doc["meta"].get("environment", {}).get("loadavg_at_start") or []
            notes.append(f"- {name}: the time budget stopped the encoder before the requested {wanted} steps in "
                         f"{len(short)} of {len(ran)} encodes (steps run {min(ran)}–{max(ran)}; load average at start "
                         f"{' / '.join(f'{x:.1f}' for x in load) or 'unknown'}): its curve reflects "
                         "this machine's speed and load as much as the codec")
        failed = doc["meta"].get("failed_points") or []
        if failed:
            first = next((f["errors"][0] for f in failed if f["errors"]), "missing images")
            notes.append(f"- {name}: {len(failed)} operating point(s) failed and are not in its curve "
                         f"({', '.join(str(f['setting']) for f in failed)}); first error: {first}")
    if notes:
        lines += [""] + notes
    published = [n for n in PUBLISHED_REFERENCES if n in anchors]
    if published and docs:
        lines += ["", "## Measured codecs against published curves", "",
                  "BD-rate of each curve measured here against the published Kodak curves of "
                  + ", ".join(published) + " (same formula; meaningful only on the full 24-image, full-size Kodak set).", "",
                  "| codec | " + " | ".join(f"vs published {n}" for n in published) + " |",
                  "|---|" + "---:|" * len(published)]
        for name, doc in docs.items():
            r = doc["results"]
            lines.append(f"| {name} | " + " | ".join(_bd_cells(anchors[n], r["bpp"], r["psnr"])[0] for n in published) + " |")
    if anchors:
        pub_jpeg = anchors.get("JPEG")
        lines += ["", "## Published Kodak anchors (`shared/anchors/kodak_published.json`)", "",
                  f"| codec | points | bpp range | BD-rate vs {anchor_name} here | BD-rate vs published JPEG | source |",
                  "|---|---:|---|---:|---:|---|"]
        for name, a in anchors.items():
            here = _bd_cells(anchor, a["bpp"], a["psnr"])[0]
            pub = _bd_cells(pub_jpeg, a["bpp"], a["psnr"])[0] if pub_jpeg else "—"
            lines.append(f"| {name} | {len(a['bpp'])} | {_fmt_range(a['bpp'])} | {here} | {pub} | {a.get('source', '')} |")
    return "\n".join(lines) + "\n"


def rd_plot(path: Path, dataset: str, docs: dict[str, dict], anchors: dict[str, dict],
            reductions: dict | None) -> bool:
    """PSNR- and MS-SSIM-vs-bpp plot; returns False (with a message) without matplotlib.

    Measured curves are solid with markers (ours thick black: the latent family solid, the others dotted), published ones dashed.
    The bpp axis ends at 2, or further if some measured codec has no point below that.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("rd_plot.png skipped: matplotlib is not installed (pip install 'inr-codec[plot]')", file=sys.stderr)
        return False
    max_bpp = max([2.0] + [min(d["results"]["bpp"]) * 1.5 for d in docs.values() if d["results"]["bpp"]])
    fig, (ax1, ax2, legend_ax) = plt.subplots(1, 3, figsize=(16, 6.5), gridspec_kw={"width_ratios": [1, 1, 0.36]})
    seen = {"psnr": [], "msdb": []}
    measured = plt.get_cmap("tab10")
    for i, (name, doc) in enumerate(docs.items()):
        r = doc["results"]
        msdb = r.get("ms-ssim-db") or [None] * len(r["bpp"])
        pts = sorted(zip(r["bpp"], r["psnr"], msdb))
        style = dict(marker="o", ms=4, label=name, lw=1.5, color=measured(i % 10))
        if name == "inr-latent":  # ours, the default family: thick black; the other families thick black dotted
            style.update(lw=2.8, color="black", zorder=6)
        elif name.startswith("inr"):
            style.update(lw=2.4, color="black", ls=":", zorder=5)
        ax1.plot([p[0] for p in pts], [p[1] for p in pts], **style)
        seen["psnr"] += [p[1] for p in pts if p[0] <= max_bpp]
        if all(p[2] is not None for p in pts):
            ax2.plot([p[0] for p in pts], [p[2] for p in pts], **style)
            seen["msdb"] += [p[2] for p in pts if p[0] <= max_bpp]
    published = plt.get_cmap("tab20b")
    for i, (name, a) in enumerate(anchors.items()):
        pts = sorted(zip(a["bpp"], a["psnr"]))
        ax1.plot([p[0] for p in pts], [p[1] for p in pts], ls="--", lw=1, color=published(i % 20),
                 label=f"{name} (published)")
        seen["psnr"] += [p[1] for p in pts if p[0] <= max_bpp]
    note = ""
    if reductions and any(reductions.get(k) is not None for k in ("limit", "images", "downscale")):
        red = ", ".join(f"{k}={reductions[k] if k != 'images' else len(reductions[k])}"
                        for k in ("limit", "images", "downscale") if reductions.get(k) is not None)
        note = f" (reduced: {red}; the dashed published curves are full-resolution Kodak, only indicative)"
    fig.suptitle(f"{dataset}{note}", fontsize=11)
    ax1.set(xlabel="bits per pixel", ylabel="PSNR RGB (dB)", title="PSNR", xlim=(0, max_bpp))
    ax2.set(xlabel="bits per pixel", ylabel="MS-SSIM (dB)", title="MS-SSIM", xlim=(0, max_bpp))
    for ax, key in ((ax1, "psnr"), (ax2, "msdb")):
        if seen[key]:
            ax.set_ylim(min(seen[key]) - 1, max(seen[key]) + 1)
        ax.grid(alpha=0.3)
    legend_ax.axis("off")
    legend_ax.legend(*ax1.get_legend_handles_labels(), loc="center left", fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=90)  # 1440 x 585 px: two committed plots stay well under the results folder's 2 MB
    plt.close(fig)
    return True
