"""scripts/gpu_check.sh and scripts/gpu_probe.py run on a lent GPU machine only now and then, so their quick mode is
exercised here on the CPU: the probe's loop-vs-scan and memory commands end in valid JSON with the fields the GPU
run reports, and both shell scripts parse."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = ROOT / "scripts" / "gpu_probe.py"


def _probe(*args: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{args[0]}.json"
    environ = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, str(PROBE), *args, "--quick", "--out", str(out)], env=environ,
                          capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout) == json.loads(out.read_text())  # stdout is the one JSON document
    return json.loads(out.read_text())


def test_loop_scan_quick_on_cpu(tmp_path):
    doc = _probe("loop-scan", tmp_path=tmp_path)
    assert doc["backend"] == "cpu" and set(doc["models"]) == {"blt", "hgru"}
    for name, row in doc["models"].items():
        assert row["logits_equal"], (name, row["max_abs_logit_diff"])
        assert row["first_loss_diff"] < 1e-4
        for strategy in ("loop", "scan"):
            r = row[strategy]
            assert r["first_step_s"] >= r["compile_s"] > 0 and r["images_per_s"] > 0
            assert r["xla_memory_analysis"]["temp_size_in_bytes"] >= 0
            assert r["peak_bytes_in_use"] is None  # the CPU client keeps no allocator counters


def test_memory_quick_runs_each_variant_in_its_own_process(tmp_path):
    doc = _probe("memory", tmp_path=tmp_path)
    assert [(r["model"], r["variant"]) for r in doc["rows"]] == [("blt", "scan"), ("blt", "remat")]
    for r in doc["rows"]:
        assert "error" not in r, r
        assert r["xla_memory_analysis"]["argument_size_in_bytes"] > 0 and r["process_s"] > 0


def test_remat_on_a_family_without_it_is_skipped_not_failed():
    from recbench.models.registry import family_defaults

    if "remat" in family_defaults("cornet"):
        pytest.skip("the cornet family has a remat key now, so the memory probe measures it")
    sys.path.insert(0, str(PROBE.parent))
    try:
        import gpu_probe
    finally:
        sys.path.remove(str(PROBE.parent))
    row = gpu_probe.memory_one("cornet_s", "remat", 2, quick=False)  # answered before anything is built
    assert "no remat key" in row["skipped"]


@pytest.mark.parametrize("script", ["gpu_check.sh", "gpu_wheels.sh"])
def test_shell_scripts_parse(script):
    proc = subprocess.run(["bash", "-n", str(ROOT / "scripts" / script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
