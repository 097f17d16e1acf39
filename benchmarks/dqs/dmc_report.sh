#!/bin/bash
# The DQS `auto` preset's DMC runs (every seed of the preset as it now is) beside this machine's baselines, through
# `boltzrl report`: tables with 95 % bootstrap intervals over seeds, learning curves and the papers' numbers.
# Writes dmc_report/ (report.md, returns.csv, aggregate.csv, cost.csv, curves_*.png). Run from this folder.
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
runs="$tmp/dqs_auto_and_baselines_dmc"
mkdir "$runs"
collect() {  # copy a run's logs (not its checkpoint) under a name the report will not confuse with another's
  mkdir "$runs/$2"
  cp "$1"/config.json "$1"/summary.json "$1"/eval.csv "$1"/train.csv "$runs/$2/"
}
for run in reacher_hard_auto_beta05* cheetah_run_auto_beta05* walker_run_auto_beta05*; do
  [ -d "$run" ] && collect "$run" "$run"
done
collect ../sac_cheetah/run sac_cheetah_run
collect ../baselines/sac_reacher_hard sac_reacher_hard
collect ../sdac/sac_walker_run sac_walker_run
for algo in qsm dacer dipo qvpo; do
  for task in cheetah_run reacher_hard; do collect "../baselines/${algo}_$task" "${algo}_$task"; done
done
boltzrl report "$runs" --budgets 100000 --out dmc_report
