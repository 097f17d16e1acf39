"""Tables of a folder of runs beside the papers' numbers (returns at step budgets, IQM across tasks, cost) and
their CSV and Markdown forms.

Across tasks: the IQM of DMC scores / 1000, over the seeds that every task of that algorithm has.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np

from boltzrl.results.load import RunRecord, is_dmc, load_paper, paper_value, value_at_budget
from boltzrl.results.stats import bootstrap_ci, iqm, stratified_bootstrap
from boltzrl.training.progress import format_duration

DMC_SCALE = 1000.0


def _groups(runs: list[RunRecord]) -> dict[tuple[str, str, str], list[RunRecord]]:
    groups: dict[tuple[str, str, str], list[RunRecord]] = {}
    for run in runs:
        groups.setdefault((run.task, run.algo, run.variant), []).append(run)
    return dict(sorted(groups.items()))


def returns_table(runs: list[RunRecord], budget: int, expected: dict | None = None) -> list[dict]:
    """One row per (task, algorithm, variant): mean and interval over the seeds that reached the budget."""
    rows = []
    for (task, algo, variant), group in _groups(runs).items():
        hits = [(run.seed, *hit) for run in group if (hit := value_at_budget(run, budget))]
        known = max(len(group), (expected or {}).get((task, algo, variant), 0))
        values = np.array([v for _, _, v in hits])
        lo, hi = bootstrap_ci(values) if len(values) else (math.nan, math.nan)
        used_steps = sorted({step for _, step, _ in hits})
        rows.append({
            "budget": budget, "task": task, "algorithm": algo, "variant": variant, "label": group[0].label,
            "seeds": len(values), "runs": known, "seed_list": " ".join(str(s) for s, _, _ in sorted(hits)),
            "mean": float(values.mean()) if len(values) else math.nan, "ci_low": lo, "ci_high": hi,
            "paper": paper_value(algo, task, budget),
            "eval_steps": " ".join(map(str, used_steps)),
        })
    return rows


def aggregate_table(runs: list[RunRecord], budget: int) -> tuple[list[dict], list[str]]:
    """IQM and mean of DMC scores / 1000 across tasks, per algorithm (and variant); also notes on what is left out."""
    notes, rows = [], []
    others = sorted({r.task for r in runs if not is_dmc(r.task)})
    if others:
        notes.append(f"Not in the aggregate (no score normalisation defined): {', '.join(others)}.")
    by_label: dict[tuple[str, str], dict[str, dict[int, float]]] = {}
    for run in runs:
        hit = value_at_budget(run, budget) if is_dmc(run.task) else None
        if hit:
            by_label.setdefault((run.algo, run.variant), {}).setdefault(run.task, {})[run.seed] = hit[1] / DMC_SCALE
    for (algo, variant), per_task in sorted(by_label.items()):
        tasks = sorted(per_task)
        seeds = sorted(set.intersection(*(set(per_task[t]) for t in tasks)))
        label = algo if variant == "default" else f"{algo} [{variant}]"
        if not seeds:
            notes.append(f"{label}: its tasks share no seed at {budget:,} steps, so no aggregate.")
            continue
        dropped = sum(len(per_task[t]) for t in tasks) - len(seeds) * len(tasks)
        if dropped:
            notes.append(f"{label}: {dropped} run(s) left out of the aggregate to keep the seeds every task has "
                         f"({', '.join(map(str, seeds))}).")
        scores = np.array([[per_task[t][s] for t in tasks] for s in seeds])
        ci = stratified_bootstrap(scores)
        paper = [paper_value(algo, t, budget) for t in tasks]
        rows.append({
            "budget": budget, "algorithm": algo, "variant": variant, "label": label, "tasks": len(tasks),
            "task_list": " ".join(tasks), "seeds": len(seeds), "iqm": iqm(scores), "iqm_low": ci["iqm"][0],
            "iqm_high": ci["iqm"][1], "mean": float(scores.mean()), "mean_low": ci["mean"][0],
            "mean_high": ci["mean"][1],
            "paper_mean": float(np.mean(paper)) / DMC_SCALE if all(p is not None for p in paper) else None,
        })
    return rows, notes


def missing_table_reasons(runs: list[RunRecord], budgets: list[int], tables: dict[str, list]) -> dict[str, str]:
    """One sentence per table that has no rows, saying why there is nothing to write."""
    reasons = {}
    if not tables.get("aggregate.csv"):
        at = ", ".join(f"{b:,}" for b in budgets)
        if not any(is_dmc(r.task) for r in runs):
            reasons["aggregate.csv"] = ("No aggregate.csv: the aggregate across tasks scores DeepMind Control tasks "
                                        "(return / 1000) and none of these runs is on one.")
        else:
            reasons["aggregate.csv"] = (f"No aggregate.csv: no algorithm has DeepMind Control runs evaluated at "
                                        f"{at} steps on a seed that all its tasks share.")
    if not tables.get("cost.csv"):
        reasons["cost.csv"] = "No cost.csv: no run has written its summary.json yet."
    if not tables.get("returns.csv"):
        reasons["returns.csv"] = "No returns.csv: there are no runs to tabulate."
    return reasons


def cost_table(runs: list[RunRecord]) -> list[dict]:
    """Wall time, throughput and peak memory from summary.json, averaged (memory: maximum) over seeds."""
    rows = []
    for (task, algo, variant), group in _groups(runs).items():
        summaries = [r.summary for r in group if r.summary.get("wall_time_s") is not None]
        if not summaries:
            continue

        def mean_of(key):
            values = [s[key] for s in summaries if s.get(key) is not None]
            return float(np.mean(values)) if values else math.nan

        memory = [s["peak_memory_mb"] for s in summaries if s.get("peak_memory_mb") is not None]
        rows.append({
            "task": task, "algorithm": algo, "variant": variant, "label": group[0].label, "runs": len(summaries),
            "complete": sum(bool(s.get("complete")) for s in summaries), "env_steps": mean_of("env_steps"),
            "update_steps": mean_of("update_steps"), "wall_time_s": mean_of("wall_time_s"),
            "env_steps_per_s": mean_of("env_steps_per_s"), "peak_memory_mb": max(memory) if memory else math.nan,
        })
    return rows


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        path.write_text("")
        return
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def render_markdown(root, runs, budgets, returns, aggregates, agg_notes, costs, notes, figures, out,
                    missing: dict[str, str] | None = None) -> str:
    complete = sum(r.complete for r in runs)
    # Papers' numbers and notes appear only for what the report holds.
    in_dqs_paper = any(paper_value(r.algo, r.task, int(b)) is not None
                       for r in runs for b in load_paper()["dqs"]["returns"])
    paper_text = (" Paper: DQS paper (DeepMind Control), where it reports the task, algorithm and budget."
                  if in_dqs_paper else "")
    parts = [f"# Report: {root}", "",
             f"{len(runs)} runs ({complete} complete, {len(runs) - complete} unfinished). Evaluation return of the "
             f"deterministic policy: mean over seeds and 95 % bootstrap interval. A run counts at a budget once it "
             f"has been evaluated at or beyond it; the value is its evaluation at the largest step ≤ the budget."
             + paper_text]
    for budget in budgets:
        rows = [r for r in returns if r["budget"] == budget]
        table = [[r["task"], r["label"], f"{r['seeds']}/{r['runs']}", _fmt(r["mean"]),
                  f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]" if r["seeds"] else "–", _fmt(r["paper"]),
                  r["eval_steps"] if r["eval_steps"] not in ("", str(budget)) else ""] for r in rows]
        parts += ["", f"## Evaluation return at {budget:,} env steps", "",
                  _markdown_table(["task", "algorithm", "seeds", "mean", "95% CI", "paper", "eval step if not "
                                   "the budget"], table)]
        agg = [a for a in aggregates if a["budget"] == budget]
        if agg:
            table = [[a["label"], str(a["tasks"]), str(a["seeds"]), _fmt(a["iqm"], 3),
                      f"[{_fmt(a['iqm_low'], 3)}, {_fmt(a['iqm_high'], 3)}]", _fmt(a["mean"], 3),
                      f"[{_fmt(a['mean_low'], 3)}, {_fmt(a['mean_high'], 3)}]", _fmt(a["paper_mean"], 3)]
                     for a in agg]
            parts += ["", f"### Across DMC tasks at {budget:,} steps (score = return / 1000)", "",
                      _markdown_table(["algorithm", "tasks", "seeds", "IQM", "95% CI", "mean", "95% CI",
                                       "paper mean, same tasks"], table)]
    if agg_notes or missing:
        parts += [""] + [f"- {n}" for n in [*agg_notes, *(missing or {}).values()]]
    if costs:
        table = [[c["task"], c["label"], f"{c['complete']}/{c['runs']}", _fmt(c["env_steps"], 0),
                  format_duration(c["wall_time_s"]) if not math.isnan(c["wall_time_s"]) else "–",
                  _fmt(c["env_steps_per_s"], 1), _fmt(c["peak_memory_mb"], 0)] for c in costs]
        parts += ["", "## Cost (mean over runs; memory: the largest peak resident set)", "",
                  _markdown_table(["task", "algorithm", "complete", "env steps", "wall time", "env steps/s",
                                   "peak memory (MB)"], table)]
    parts += ["", "## Missing and unfinished runs", ""]
    parts += [f"- {n}" for n in notes] if notes else ["None: every run found is complete."]
    if figures:
        crosses = "; crosses: paper" if in_dqs_paper else ""
        parts += ["", f"## Learning curves (mean and 95 % bootstrap interval over seeds{crosses})", ""]
        parts += [f"![{task}]({os.path.relpath(path, out)})" for task, path in figures.items()]
    if any(r.algo == "sdac" for r in runs):
        parts += ["", "## SDAC paper (Gymnasium MuJoCo v4, 10^6 steps): what is published", ""]
        parts += [f"- {n}" for n in load_paper()["sdac"]["notes"]]
    return "\n".join(parts) + "\n"
