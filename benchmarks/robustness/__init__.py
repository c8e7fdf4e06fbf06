"""Robustness tools for the decoder and the console scripts (fuzzing, bit flips, bad inputs); the tests
import their file makers. Long runs: `python -m benchmarks.robustness.fuzz_inr --cases 1000000 --seed 1`."""
