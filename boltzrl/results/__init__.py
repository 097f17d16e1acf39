"""Results: read run folders, tabulate them beside the papers' numbers, plot learning curves."""

from boltzrl.results.load import RunRecord, load_runs, value_at_budget
from boltzrl.results.report import build_report
from boltzrl.results.stats import bootstrap_ci

__all__ = ["RunRecord", "bootstrap_ci", "build_report", "load_runs", "value_at_budget"]
