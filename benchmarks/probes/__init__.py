"""One-off measurements that still earn their keep (the GPU runbook's checks, the ablation, decode speed,
the rate-distortion rounding figure); each is `python -m benchmarks.probes.NAME --help`. What the deleted
probes measured is in benchmarks/DECISIONS.md."""
