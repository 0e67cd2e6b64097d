#!/usr/bin/env bash
# Train the quick start with the BUTD model and with the question-only baseline, then print
# both best val/score figures and the gap (the image should be worth 20+ points).
# Usage: scripts/quickstart.sh [extra Hydra overrides...]
set -euo pipefail
declare -A score
for model in newatt question_only; do
    start=$(date +%s)
    python -m butd.train experiment=quickstart model="$model" "$@" hydra.run.dir="outputs/quickstart/compare/$model"
    score[$model]=$(python -c "import json; print(round(json.load(open('outputs/quickstart/compare/$model/metrics.json'))['val/score'], 2))")
    echo "model=$model  best val/score ${score[$model]}  ($(( $(date +%s) - start )) s)"
done
python -c "print(f'gap: {${score[newatt]} - ${score[question_only]}:.2f} points of val/score')"
