#!/bin/bash
# DQS paper preset (K = 1000) on cheetah-run, 100k env steps, on a GPU machine with JAX (CUDA), Flax and Optax but
# no package index: the other dependencies come as Python 3.12 wheels in .whl/ (pip download --no-deps
# --only-binary=:all: --python-version 3.12 ... mujoco==3.17.0 dm_control==1.0.50 gymnasium tyro tensorboardX and
# their own needs; dm_control without its locomotion assets and mujoco without mujoco/experimental, to fit the
# transfer). Then the per-update costs there. It ran as .whl/gpu_paper.sh beside the wheels (this is a copy).
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 MUJOCO_GL=disable
nvidia-smi -L; nproc
python3 -c "import jax, flax, optax, mujoco, dm_control; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())" || exit 4
start=$(date +%s)
timeout ${TRAIN_S:-450} python3 -m boltzrl.cli train --algo dqs --preset paper --env cheetah-run --steps 100000 --seed 0 \
  --eval-every 10000 --eval-episodes 10 --checkpoint-every 10000 --out /tmp/paper 2>&1 | tee $OUT/paper_log.txt | grep -v "WARNING:absl" | awk 'NR % 10 == 1 || /eval|done|rror|Trace/'
echo "training wall s: $(( $(date +%s) - start ))"
mkdir -p $OUT/paper; cp /tmp/paper/config.json /tmp/paper/eval.csv /tmp/paper/train.csv /tmp/paper/summary.json $OUT/paper/ 2>/dev/null
timeout ${COST_S:-100} python3 benchmarks/update_cost.py dqs:paper dqs:auto dqs:cpu --repeats 5 --chunk 4 2>&1 | grep -v WARNING | tee $OUT/gpu_update_cost.md
ls -la $OUT $OUT/paper
