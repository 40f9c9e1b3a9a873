#!/usr/bin/env bash
# BEER A/B on DeepMind Control (issue 16): DDPG (the BEER recipe with beta = 0, so both arms log the
# same cosine and srank statistics) vs DDPG + BEER (beta = 1e-3), seed-major over three tasks, two
# runs at a time with one torch thread each; resumable (rerun the same command to continue).
#   bash scripts/beer_ab.sh [STEPS] [LEARNING_STARTS]     (defaults 40000 10000)
set -euo pipefail
steps=${1:-40000}
starts=${2:-10000}
out=${OUT:-runs/beer-ab}
for seed in 0 1 2; do
  for task in cheetah-run walker-walk reacher-hard; do
    OMP_NUM_THREADS=1 .venv/bin/python scripts/seed_table.py --env "dmc:$task" \
      --agents "ddpg=beer,beer.beta=0" beer --seeds "$seed" --steps "$steps" --eval-every 5000 \
      --eval-episodes 10 --set "train.learning_starts=$starts" --jobs 2 --out "$out/$task"
  done
done
