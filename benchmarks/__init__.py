"""Rate–distortion benchmarks of the .inr codec against classic baselines.

Run ``python -m benchmarks --help`` (or ``inr-bench``). See ``benchmarks/README.md``.
"""
