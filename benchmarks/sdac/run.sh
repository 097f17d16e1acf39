#!/usr/bin/env bash
# 100k env steps on ENV, seed 0, 10 evaluation episodes every 10k steps, into benchmarks/sdac/NAME, then its
# Markdown summary. Usage: bash benchmarks/sdac/run.sh NAME ENV ALGO [train flags...]
#   bash benchmarks/sdac/run.sh cheetah_run cheetah-run sdac --preset cpu
#   bash benchmarks/sdac/run.sh sac_walker_run walker-run sac
# Two runs side by side: prefix each with `taskset -c 0` / `taskset -c 1`.
set -euo pipefail
cd "$(dirname "$0")"
name=$1; env=$2; algo=$3; shift 3
rm -rf "$name"
boltzrl train --algo "$algo" --env "$env" --steps 100000 --seed 0 --eval-every 10000 --eval-episodes 10 \
  --checkpoint-every 10000 --out "$name" "$@"
python ../summarize_run.py "$name" > "$name.md"
