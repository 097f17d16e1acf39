"""`boltzrl report RUNS_DIR`: tables (Markdown and CSV) and learning curves of a folder of runs."""

from __future__ import annotations

import argparse

from boltzrl.results.report import build_report


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="boltzrl report", description=__doc__.splitlines()[0].split(": ", 1)[1],
        epilog="example: boltzrl report runs/dmc --budgets 100000 250000")
    p.add_argument("runs", help="folder of run folders (a sweep's --out, or any folder holding runs)")
    p.add_argument("--budgets", nargs="+", type=int, default=None,
                   help="env-step budgets of the tables (default: the step counts the runs were asked for)")
    p.add_argument("--out", default=None, help="where to write the report (default: RUNS/report)")
    args = p.parse_args(argv)
    if args.budgets and min(args.budgets) <= 0:
        raise ValueError("--budgets must be positive step counts.")
    report = build_report(args.runs, args.budgets, args.out)
    print(report["markdown"])
    print(f"report written to {report['out']}/report.md (with {', '.join(report['tables'] or ['no table'])} and "
          f"{len(report['figures'])} figure(s))")
    return 0
