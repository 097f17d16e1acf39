"""`boltzrl report` on run folders written here: budget rule, bootstrap intervals, IQM, paper column, cost,
missing runs and figures, each against numbers computed independently."""

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from boltzrl.results.cli import main
from boltzrl.results.load import load_paper, load_runs, value_at_budget
from boltzrl.results.report import build_report
from boltzrl.results.stats import bootstrap_ci, stratified_bootstrap

EVAL_STEPS = [40_000, 80_000, 120_000]
# Returns at 80k (the last evaluation at or before a 100k budget), per task and seed.
AT_80K = {"cheetah-run": [100.0, 220.0, 400.0, 700.0], "walker-run": [300.0, 500.0, 650.0]}


def _write_run(root: Path, algo: str, env: str, seed: int, steps: list[int], returns: list[float], target: int,
               complete: bool, wall: float = 100.0) -> Path:
    folder = root / algo / env.replace("/", "_") / "default" / f"seed{seed}"
    folder.mkdir(parents=True)
    config = {"algo": algo, "preset": None, "agent": {}, "train": {"env": env, "seed": seed, "steps": target}}
    (folder / "config.json").write_text(json.dumps(config))
    rows = "".join(f"{s},{r},0.0,1000,{s / 100}\n" for s, r in zip(steps, returns))
    (folder / "eval.csv").write_text("env_step,eval_return,eval_return_std,eval_length,wall_time_s\n" + rows)
    summary = {"complete": complete, "env_steps": steps[-1], "update_steps": steps[-1], "wall_time_s": wall,
               "env_steps_per_s": steps[-1] / wall, "peak_memory_mb": 500.0 + seed, "final_eval_return": returns[-1]}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


@pytest.fixture
def runs_dir(tmp_path):
    root = tmp_path / "runs"
    for task, values in AT_80K.items():
        for seed, value in enumerate(values):
            _write_run(root, "sac", task, seed, EVAL_STEPS, [value - 50, value, value + 1000], 120_000, True,
                       wall=100.0 * (seed + 1))
    # A run still going: evaluated only up to 40k, so it must not count at 100k.
    _write_run(root, "sac", "walker-run", 3, [40_000], [9999.0], 120_000, False)
    _write_run(root, "td3", "Pendulum-v1", 0, [1_000, 2_000], [-900.0, -300.0], 2_000, True)
    manifest = {"runs": [{"path": f"sac/cheetah-run/default/seed{s}", "algo": "sac", "env": "cheetah-run", "seed": s,
                          "steps": 120_000, "variant": "default"} for s in range(5)]}
    (root / "sweep.json").write_text(json.dumps(manifest))
    return root


def test_runs_outside_a_sweep_are_told_apart_by_preset_and_the_default_preset_is_no_preset(tmp_path):
    for name, preset in [("old", None), ("new", "default"), ("cheap", "cpu")]:
        folder = tmp_path / name
        folder.mkdir()
        config = {"algo": "sac", "preset": preset, "agent": {}, "train": {"env": "cheetah-run", "seed": 0, "steps": 10}}
        (folder / "config.json").write_text(json.dumps(config))
    assert {r.path.name: r.variant for r in load_runs(tmp_path)} == {"old": "default", "new": "default",
                                                                     "cheap": "preset=cpu"}


def exact_bootstrap_quantiles(values, qs):
    """Quantiles of the exact bootstrap distribution of the mean: all n^n equally likely resamples."""
    means = sorted(np.mean(c) for c in itertools.product(values, repeat=len(values)))
    return [means[int(np.ceil(q * len(means))) - 1] for q in qs]


def test_budget_rule_takes_the_last_evaluation_at_or_before_the_budget(runs_dir):
    runs = {(r.task, r.seed): r for r in load_runs(runs_dir)}
    run = runs[("cheetah-run", 1)]
    assert value_at_budget(run, 100_000) == (80_000, 220.0)
    assert value_at_budget(run, 80_000) == (80_000, 220.0)
    assert value_at_budget(run, 30_000) is None  # no evaluation at or before it
    assert value_at_budget(runs[("walker-run", 3)], 100_000) is None  # not trained that far yet
    assert value_at_budget(run, 130_000) is None


def test_bootstrap_interval_matches_the_exact_bootstrap_distribution():
    values = AT_80K["cheetah-run"]
    lo, hi = bootstrap_ci(values)
    exact_lo, exact_hi = exact_bootstrap_quantiles(values, [0.025, 0.975])
    spread = max(values) - min(values)
    assert abs(lo - exact_lo) < 0.02 * spread and abs(hi - exact_hi) < 0.02 * spread
    assert bootstrap_ci([5.0]) == (5.0, 5.0)


def test_stratified_bootstrap_of_one_seed_per_task_has_no_width():
    scores = np.array([[0.1, 0.5, 0.9, 0.3]])
    ci = stratified_bootstrap(scores)
    assert ci["iqm"][0] == pytest.approx(ci["iqm"][1]) == pytest.approx(0.4)  # middle two of four
    assert ci["mean"] == pytest.approx((0.45, 0.45))


def test_report_tables(runs_dir, tmp_path):
    report = build_report(runs_dir, [100_000, 250_000], tmp_path / "out")
    rows = {(r["budget"], r["task"], r["algorithm"]): r for r in report["returns"]}

    cheetah = rows[(100_000, "cheetah-run", "sac")]
    assert cheetah["seeds"] == 4 and cheetah["runs"] == 5  # the manifest asked for 5 seeds
    assert cheetah["mean"] == pytest.approx(np.mean(AT_80K["cheetah-run"]))
    exact_lo, exact_hi = exact_bootstrap_quantiles(AT_80K["cheetah-run"], [0.025, 0.975])
    assert cheetah["ci_low"] == pytest.approx(exact_lo, abs=15)
    assert cheetah["ci_high"] == pytest.approx(exact_hi, abs=15)
    assert cheetah["paper"] == 216.88 and cheetah["eval_steps"] == "80000"
    walker = rows[(100_000, "walker-run", "sac")]
    assert walker["seeds"] == 3 and walker["mean"] == pytest.approx(np.mean(AT_80K["walker-run"]))
    assert walker["paper"] == 226.52
    assert rows[(250_000, "cheetah-run", "sac")]["seeds"] == 0  # nobody trained that far
    pendulum_td3 = rows[(100_000, "Pendulum-v1", "td3")]
    assert pendulum_td3["seeds"] == 0 and pendulum_td3["paper"] is None

    (agg,) = [a for a in report["aggregate"] if a["budget"] == 100_000]
    shared_seeds = [0, 1, 2]  # the seeds both tasks have
    scores = np.array([[AT_80K[t][s] / 1000 for t in ("cheetah-run", "walker-run")] for s in shared_seeds]).ravel()
    middle = np.sort(scores)[1:-1]  # 6 scores: the IQM drops one from each end
    assert agg["tasks"] == 2 and agg["seeds"] == 3
    assert agg["iqm"] == pytest.approx(middle.mean()) and agg["mean"] == pytest.approx(scores.mean())
    assert agg["iqm_low"] <= agg["iqm"] <= agg["iqm_high"] and agg["iqm_low"] >= scores.min()
    assert agg["paper_mean"] == pytest.approx((216.88 + 226.52) / 2 / 1000)

    cost = {(c["task"], c["algorithm"]): c for c in report["cost"]}
    assert cost[("cheetah-run", "sac")]["wall_time_s"] == pytest.approx(250.0)  # mean of 100, 200, 300, 400
    assert cost[("cheetah-run", "sac")]["peak_memory_mb"] == 503.0

    notes = "\n".join(report["notes"])
    assert "not started: sac cheetah-run default seed 4" in notes
    assert "stopped: sac walker-run seed 3, at step 40,000 of 120,000, evaluated up to step 40,000" in notes
    md = report["markdown"]
    assert "Pendulum-v1" in md and "Not in the aggregate" in md
    assert "SDAC" not in md  # no SDAC run: none of that paper's notes

    import matplotlib.image

    for task in ("cheetah-run", "walker-run", "Pendulum-v1"):
        image = matplotlib.image.imread(report["figures"][task])
        assert image.ndim == 3 and image.shape[0] > 200 and image[..., :3].std() > 0


def test_report_command_writes_markdown_and_csv(runs_dir, tmp_path, capsys):
    out = tmp_path / "rep"
    assert main([str(runs_dir), "--budgets", "100000", "--out", str(out)]) == 0
    assert "## Evaluation return at 100,000 env steps" in capsys.readouterr().out
    with open(out / "returns.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["task"], r["algorithm"], r["seeds"]) for r in rows} == {
        ("cheetah-run", "sac", "4"), ("walker-run", "sac", "3"), ("Pendulum-v1", "td3", "0")}
    assert (out / "report.md").exists() and (out / "aggregate.csv").exists() and (out / "cost.csv").exists()


def test_default_budgets_are_the_requested_steps(runs_dir, tmp_path):
    report = build_report(runs_dir, None, tmp_path / "out")
    assert sorted({r["budget"] for r in report["returns"]}) == [2_000, 120_000]
    pendulum = [r for r in report["returns"] if r["task"] == "Pendulum-v1" and r["budget"] == 2_000][0]
    assert pendulum["seeds"] == 1 and pendulum["mean"] == -300.0 and pendulum["ci_low"] == -300.0


def test_paper_results_hold_every_number_and_the_published_means():
    dqs = load_paper()["dqs"]
    assert set(dqs["returns"]) == {"100000", "250000"}
    for budget, table in dqs["returns"].items():
        assert len(table) == 8 and all(len(row) == 8 for row in table.values())
        for algo, mean in dqs["task_means"][budget].items():
            assert np.mean([table[t][algo] for t in table]) == pytest.approx(mean, abs=0.05)
    assert dqs["returns"]["250000"]["reacher-hard"]["dqs"] == 974.05
    assert dqs["returns"]["100000"]["finger-spin"]["ddpg"] == 0.36


def _colour_pixels(png: Path, colour: str) -> int:
    import matplotlib.colors
    import matplotlib.image

    image = matplotlib.image.imread(png)[..., :3]
    target = np.array(matplotlib.colors.to_rgb(colour))
    return int((np.abs(image - target).max(-1) < 0.1).sum())


def test_runs_with_one_evaluation_draw_their_point_and_interval(tmp_path):
    root = tmp_path / "runs"
    for seed, value in enumerate([-500.0, -300.0, -100.0]):
        _write_run(root, "sac", "Pendulum-v1", seed, [5_000], [value], 5_000, True)
    report = build_report(root, None, tmp_path / "out")
    # The legend's sample alone has some 50 pixels of the line's colour; the point and its error bar add hundreds.
    assert _colour_pixels(report["figures"]["Pendulum-v1"], "C0") > 300


def test_a_seed_found_in_two_folders_counts_once(tmp_path):
    root = tmp_path / "runs"
    for seed, value in enumerate([100.0, 300.0]):
        _write_run(root, "sac", "cheetah-run", seed, [5_000], [value], 5_000, True)
    # The same seed again: a copy of the sweep folder, and the env spelt the other way (both are task cheetah-run).
    _write_run(root / "copy", "sac", "cheetah-run", 0, [5_000], [100.0], 5_000, True)
    spelt = _write_run(root, "sac", "dm_control/cheetah-run-v0", 1, [2_000], [700.0], 5_000, False)
    report = build_report(root, None, tmp_path / "out")
    (row,) = [r for r in report["returns"] if r["task"] == "cheetah-run"]
    assert (row["seeds"], row["runs"], row["seed_list"]) == (2, 2, "0 1")
    assert row["mean"] == pytest.approx(200.0)  # the unfinished duplicate is the one left out
    duplicates = [n for n in report["notes"] if n.startswith("duplicate:")]
    assert len(duplicates) == 2 and any(f"seed 1 in {spelt} is not counted" in n for n in duplicates)
    assert "| 2/2 |" in report["markdown"]


def test_nothing_to_aggregate_writes_no_empty_aggregate_csv(tmp_path, capsys):
    root, out = tmp_path / "runs", tmp_path / "out"
    _write_run(root, "sac", "Pendulum-v1", 0, [1_000, 2_000], [-900.0, -300.0], 2_000, True)
    out.mkdir()
    (out / "aggregate.csv").write_text("budget,algorithm\n1,stale\n")  # from an earlier report
    assert main([str(root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert not (out / "aggregate.csv").exists() and (out / "returns.csv").stat().st_size > 0
    assert "No aggregate.csv: the aggregate across tasks scores DeepMind Control tasks" in printed
    assert "with returns.csv, cost.csv and 1 figure(s)" in printed

    _write_run(root, "sac", "cheetah-run", 0, [1_000, 2_000], [10.0, 20.0], 2_000, True)
    report = build_report(root, [2_000, 5_000], out)
    with open(out / "aggregate.csv") as f:
        assert [(r["budget"], r["algorithm"], r["seeds"]) for r in csv.DictReader(f)] == [("2000", "sac", "1")]
    assert "aggregate.csv" in report["tables"] and "aggregate.csv" not in report["missing"]


def test_paper_notes_only_for_algorithms_in_the_report(tmp_path):
    root = tmp_path / "runs"
    _write_run(root, "sac", "Pendulum-v1", 0, [1_000], [-300.0], 1_000, True)
    md = build_report(root, None, tmp_path / "out")["markdown"]
    assert "SDAC" not in md and "DQS paper" not in md and "crosses: paper" not in md
    _write_run(root, "sdac", "Pendulum-v1", 0, [1_000], [-200.0], 1_000, True)
    md = build_report(root, None, tmp_path / "out")["markdown"]
    assert "## SDAC paper" in md and "SDAC beats SAC by 32.8 %" in md and "DQS paper" not in md
