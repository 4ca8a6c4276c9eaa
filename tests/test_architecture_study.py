"""The architecture study (minilm/studies/architecture.py): its ci preset end to end through the command line,
the plan, and the report's readings on records made by hand."""
import json
import subprocess
import sys

import numpy as np
import pytest

from minilm.studies import architecture
from minilm.studies.architecture import ARMS, READS, DecoderRun, EncDecRun, compute_to_reach, multipliers, plan
from minilm.studies.stats import PowerLaw


def test_plan_trains_each_point_once():
    config = architecture.preset("full")
    points = plan(config)
    decoders = [p for p in points if isinstance(p, DecoderRun)]
    encoders = [p for p in points if isinstance(p, EncDecRun)]
    assert len(points) == len(set(points)) == len({p.key for p in points})
    # part 2's shapes L2 d32 and L2 d48 are part 1's plain sizes: trained once
    shapes = {tuple(s) for group in config.shapes.values() for s in group}
    sizes = {tuple(s) for s in config.sizes}
    assert len(decoders) == len(config.seeds) * (len(ARMS) * len(sizes) + len(shapes - sizes))
    assert len(encoders) == len(config.seeds) * 2 * len(config.depths) * len(READS)


def test_compute_to_reach_inverts_the_law():
    law = PowerLaw(a=30.0, alpha=0.12, floor=0.5)
    compute = np.array([1e10, 1e12])
    assert np.allclose(compute_to_reach(law, law(compute)), compute)
    assert compute_to_reach(law, [0.4])[0] == np.inf  # below the floor: no compute reaches it


def fake_results(factor):
    """Part 1 records on an exact law L = 0.3 + 20 C^-0.1: the changed arm reaches the plain loss of `factor`
    times its compute, so its multiplier is factor at every size (to the floor fit's grid, 1%)."""
    law = PowerLaw(20.0, 0.1, 0.3)
    sizes = [[1, 8, 1], [1, 16, 1], [2, 16, 2]]
    points = {}
    for i, size in enumerate(sizes):
        compute = 1e10 * 4 ** i
        for seed in range(3):
            for arm, loss in (("plain", law(compute)), ("rope", law(factor * compute))):
                key = f"{arm}{i}{seed}"
                points[key] = {"part": "decoder", "arm": arm, "n_layer": size[0], "d_model": size[1],
                               "n_head": size[2], "seed": seed, "flops": compute, "val_loss": float(loss)}
    return {"config": {"sizes": sizes}, "points": points}


@pytest.mark.parametrize("factor", [0.5, 3.0])
def test_multiplier_reads_the_compute_a_change_is_worth(factor):
    m, low, high = multipliers(fake_results(factor), "rope", n_boot=50)
    assert np.allclose(m, factor, rtol=1e-2) and np.all(low <= m + 1e-9) and np.all(m <= high + 1e-9)


def test_ci_preset_trains_and_reports(tmp_path):
    out = tmp_path / "architecture_ci.json"
    run = subprocess.run([sys.executable, "-m", "minilm", "architecture", "--preset", "ci", "--out", str(out),
                          "--quiet"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    results = json.loads(out.read_text())
    assert len(results["points"]) == len(plan(architecture.preset("ci")))
    assert {r["arm"] for r in results["points"].values() if r["part"] == "decoder"} == {"plain", "rope", "llama"}
    for line in ("modifications: compute multiplier", "rope ", "llama ", "shapes: answer log-prob",
                 "facts_tail: widest - deepest", "encoder: exact match", "chat depth 3:"):
        assert line in run.stdout, line
    again = subprocess.run([sys.executable, "-m", "minilm", "architecture", "--preset", "ci", "--out", str(out),
                            "--quiet"], capture_output=True, text=True, timeout=300)
    assert "0 of" in again.stdout  # resumed: nothing left to train
