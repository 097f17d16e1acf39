"""`boltzrl report`: reads a folder of runs and writes its tables, notes and learning curves into one folder.

How runs count at a budget: `boltzrl.results.load`; intervals and aggregates: `boltzrl.results.stats`.
"""

from __future__ import annotations

from pathlib import Path

from boltzrl.results.load import RunRecord, drop_duplicate_seeds, load_runs, status_notes
from boltzrl.results.plots import plot_curves
from boltzrl.results.tables import (aggregate_table, cost_table, missing_table_reasons, render_markdown, returns_table,
                                    write_csv)


def default_budgets(runs: list[RunRecord]) -> list[int]:
    return sorted({r.target_steps for r in runs})


def build_report(root: str | Path, budgets: list[int] | None = None, out: str | Path | None = None) -> dict:
    """Write report.md, returns.csv, aggregate.csv, cost.csv and curves_*.png into `out` (default ROOT/report).

    A table with no rows is not written; `missing` says why, in one sentence per table. A seed found in two
    folders counts once (`drop_duplicate_seeds`). Returns the tables and the paths written.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder of runs.")
    found = load_runs(root)
    if not found:
        raise FileNotFoundError(f"No run folders (folders with a config.json) under {root}.")
    runs, duplicates = drop_duplicate_seeds(found)
    budgets = sorted(budgets or default_budgets(runs))
    out = Path(out) if out else root / "report"
    out.mkdir(parents=True, exist_ok=True)
    notes, expected = status_notes(root, found, budgets)
    notes = duplicates + notes
    returns = [row for b in budgets for row in returns_table(runs, b, expected)]
    aggregates, agg_notes = [], []
    for b in budgets:
        rows, b_notes = aggregate_table(runs, b)
        aggregates += rows
        agg_notes += [n for n in b_notes if n not in agg_notes]
    costs = cost_table(runs)
    figures = plot_curves(runs, out)

    tables = {"returns.csv": returns, "aggregate.csv": aggregates, "cost.csv": costs}
    missing = missing_table_reasons(runs, budgets, tables)
    for name, rows in tables.items():
        if rows:
            write_csv(out / name, rows)
        else:  # no empty file, and none left from an earlier report that would pass for this one's
            (out / name).unlink(missing_ok=True)
    markdown = render_markdown(root, runs, budgets, returns, aggregates, agg_notes, costs, notes, figures, out,
                               missing)
    (out / "report.md").write_text(markdown)
    return {"markdown": markdown, "returns": returns, "aggregate": aggregates, "cost": costs, "notes": notes,
            "figures": figures, "out": out, "tables": [name for name, rows in tables.items() if rows],
            "missing": missing}
