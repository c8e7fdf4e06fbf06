"""The table of README.md from this folder's JSON files (run from the repository root):

    python benchmarks/results/kodak_gpu_h200_batch16k/summary.py

Per rate: mean bpp and PSNR of the 24 images, JPEG 4:2:0's PSNR at each image's bpp (that image's
JPEG curve in ../kodak_gpu_h200/jpeg420.json, interpolated in log-bpp) averaged, the same images'
PSNR with 400 whole-image steps (../kodak_gpu_h200/inr.json), images worse than those, images
re-encoded singly (fit_attempts > 1), encode seconds; then the 10 images of 1.2 bpp.
"""
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
EARLIER = HERE.parent / "kodak_gpu_h200"


def main():
    jpeg = {}
    for r in json.loads((EARLIER / "jpeg420.json").read_text())["per_image"]:
        if "psnr" in r:
            jpeg.setdefault(r["image"], []).append((r["bpp"], r["psnr"]))

    def jpeg_at(image, bpp):
        points = sorted(jpeg[image])
        return float(np.interp(np.log(bpp), np.log([p[0] for p in points]), [p[1] for p in points]))

    earlier = {(r["image"], r["setting"]): r for r in json.loads((EARLIER / "inr.json").read_text())["per_image"]}
    for name in ["curve_10650_steps/inr.json", "curve_2000_steps/inr_0.5.json", "curve_2000_steps/inr_0.75.json"]:
        by_rate = {}
        for r in json.loads((HERE / name).read_text())["per_image"]:
            if "psnr" in r:  # points a process did not finish have no result
                by_rate.setdefault(r["setting"], []).append(r)
        for rate, rows in sorted(by_rate.items()):
            psnr = [r["psnr"] for r in rows]
            worse = [r["image"] for r in rows if r["psnr"] < earlier[(r["image"], rate)]["psnr"]]
            single = [r["image"] for r in rows if r["encoder"]["fit_attempts"] > 1]
            seconds = [r["encoding_time"] for r in rows]
            print(f"{rate}: {len(rows)} images, steps {rows[0]['encoder']['steps']}, bpp {np.mean([r['bpp'] for r in rows]):.4f}, "
                  f"PSNR {np.mean(psnr):.2f}, JPEG 4:2:0 {np.mean([jpeg_at(r['image'], r['bpp']) for r in rows]):.2f}, "
                  f"400 whole-image steps {np.mean([earlier[(r['image'], rate)]['psnr'] for r in rows]):.2f}, "
                  f"worse than those: {worse}, re-encoded singly: {single}, "
                  f"encode s mean {np.mean(seconds):.2f} median {np.median(seconds):.2f}")
    for line in (HERE / "curve_2000_steps/records_1.2_partial.jsonl").read_text().splitlines():
        r = json.loads(line)["record"]
        print(f"1.2: {r['image']} bpp {r['bpp']:.4f} PSNR {r['psnr']:.2f} (400 whole-image steps "
              f"{earlier[(r['image'], 1.2)]['psnr']:.2f}, JPEG 4:2:0 {jpeg_at(r['image'], r['bpp']):.2f})")


if __name__ == "__main__":
    main()
