"""`boltzrl report`: reads a folder of runs and writes its tables, notes and learning curves into one folder.

How runs count at a budget: `boltzrl.results.load`; intervals and aggregates: `boltzrl.results.stats`.
"""

from __future__ import annotations

from pathlib import Path

from boltzrl.results.load import RunRecord, load_runs, status_notes
from boltzrl.results.plots import plot_curves
from boltzrl.results.tables import aggregate_table, cost_table, render_markdown, returns_table, write_csv


def default_budgets(runs: list[RunRecord]) -> list[int]:
    return sorted({r.target_steps for r in runs})


def build_report(root: str | Path, budgets: list[int] | None = None, out: str | Path | None = None) -> dict:
    """Write report.md, returns.csv, aggregate.csv, cost.csv and curves_*.png into `out` (default ROOT/report).

    Returns the tables and the paths written.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder of runs.")
    runs = load_runs(root)
    if not runs:
        raise FileNotFoundError(f"No run folders (folders with a config.json) under {root}.")
    budgets = sorted(budgets or default_budgets(runs))
    out = Path(out) if out else root / "report"
    out.mkdir(parents=True, exist_ok=True)
    notes, expected = status_notes(root, runs, budgets)
    returns = [row for b in budgets for row in returns_table(runs, b, expected)]
    aggregates, agg_notes = [], []
    for b in budgets:
        rows, b_notes = aggregate_table(runs, b)
        aggregates += rows
        agg_notes += [n for n in b_notes if n not in agg_notes]
    costs = cost_table(runs)
    figures = plot_curves(runs, out)

    write_csv(out / "returns.csv", returns)
    write_csv(out / "aggregate.csv", aggregates)
    write_csv(out / "cost.csv", costs)
    markdown = render_markdown(root, runs, budgets, returns, aggregates, agg_notes, costs, notes, figures, out)
    (out / "report.md").write_text(markdown)
    return {"markdown": markdown, "returns": returns, "aggregate": aggregates, "cost": costs, "notes": notes,
            "figures": figures, "out": out}
