#!/bin/bash
# The DQS `auto` preset's DMC runs (every seed, before and since its LayerNorm critics, with 10k warm-up steps,
# and since its standardised observations) beside this machine's baselines, through `boltzrl report`: tables
# with 95 % bootstrap intervals over seeds, learning curves and the papers' numbers.
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
# The preset's runs in the sweep layout dqs/ENV/VARIANT/seedS, so that the report keeps its versions apart: before
# (auto_beta05) and since (auto_ln) its critics took a LayerNorm, the latter with the paper's 10k warm-up steps
# (auto_ln_warmup10k), and since its observations are standardised (auto_ln_normobs).
for variant in beta05 ln ln_warmup10k ln_normobs; do
  for run in {reacher_hard,cheetah_run,walker_run}_auto_${variant}{,_seed*}; do  # not the variants' variants
    [ -d "$run" ] || continue
    where=$(python -c 'import json, sys; t = json.load(open(sys.argv[1]))["train"]; print(t["env"], t["seed"])' \
      "$run/config.json")
    set -- $where
    mkdir -p "$runs/dqs/$1/auto_$variant"
    collect "$run" "dqs/$1/auto_$variant/seed$2"
  done
done
collect ../sac_cheetah/run sac_cheetah_run
collect ../baselines/sac_reacher_hard sac_reacher_hard
collect ../sdac/sac_walker_run sac_walker_run
for algo in qsm dacer dipo qvpo; do
  for task in cheetah_run reacher_hard; do collect "../baselines/${algo}_$task" "${algo}_$task"; done
done
boltzrl report "$runs" --budgets 100000 --out dmc_report
