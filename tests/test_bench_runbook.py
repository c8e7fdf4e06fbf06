"""The GPU runbook's planning, dry-run on the CPU: its modules exist where the script calls them, and
`benchmarks.probes.gpu_latent plan` turns probe step times into a curve (no GPU, no fitting)."""
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNBOOK = ROOT / "benchmarks" / "gpu_runbook.sh"


def test_every_module_the_runbook_runs_exists():
    modules = set(re.findall(r"python3? -m (benchmarks[\w.]*)", RUNBOOK.read_text()))
    assert {"benchmarks", "benchmarks.probes.gpu_check", "benchmarks.probes.gpu_latent"} <= modules
    for name in modules:
        assert importlib.util.find_spec(name) is not None, name


def test_runbook_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(RUNBOOK)]).returncode == 0


def test_latent_plan_picks_the_most_images_that_get_the_wanted_steps(tmp_path):
    probes = []
    for k, seconds in enumerate((0.010, 0.012)):
        path = tmp_path / f"latent_probe_{k}.json"
        path.write_text(json.dumps({"seconds_per_step": seconds}))
        probes.append(str(path))
    out = subprocess.run([sys.executable, "-m", "benchmarks.probes.gpu_latent", "plan", "--probes", *probes,
                          "--images", "6,12,24", "--rates", "5", "--seconds", "330", "--finish-seconds", "8",
                          "--want-steps", "2000"], cwd=ROOT, capture_output=True, text=True, check=True)
    plan = json.loads(out.stdout)
    # 2 processes, 0.012 s a step: 24 images -> 60 jobs each, (330/60 - 8) < 0 -> the minimum; 12 -> 30 jobs,
    # 3 s each, too few; 6 -> 15 jobs, (22 - 8) / 0.012 = 1166 steps -> 1150: none reaches 2000, so the fewest
    assert plan["images"] == 6 and plan["processes"] == 2
    assert plan["steps"] == 1150 and plan["steps"] % 50 == 0
