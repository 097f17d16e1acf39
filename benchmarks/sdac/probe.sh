#!/usr/bin/env bash
# The 30k-step probes of the diagnosis (README.md): SDAC on cheetah-run, seed 0, 5 evaluation episodes every 10k
# steps, into benchmarks/sdac/probes/NAME. Usage: bash benchmarks/sdac/probe.sh NAME [train flags...]
set -euo pipefail
cd "$(dirname "$0")"
name=$1; shift
mkdir -p probes && rm -rf "probes/$name"
boltzrl train --algo sdac --env cheetah-run --steps 30000 --seed 0 --eval-every 10000 --eval-episodes 5 \
  --checkpoint-every 10000 --out "probes/$name" "$@"
