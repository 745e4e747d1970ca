#!/bin/bash
# Do 2-model ensembles and flip TTA help? On the same-budget pretrained runs of run.sh (3 seeds):
# each pair of seeds as an equal-weight ensemble, and each seed with --tta flips, all scored by
# landseg.evaluate on the same held-out tiles as the single models.
#
#   experiments/compare_budget/ensemble_tta.sh dubai     # then: python experiments/compare_budget/summarise.py
set -u
dataset=$1; HELDOUT=${HELDOUT:-/tmp/dubai_val}
cd "$(dirname "$0")/../.."
runs=experiments/runs/compare_budget; out=$runs/extra; mkdir -p $out
arm=${dataset}_lite_pretrained
for pair in "0 1" "0 2" "1 2"; do
  set -- $pair
  name=${dataset}_ensemble_s$1s$2
  [ -f $out/$name/metrics.json ] || python -m landseg.evaluate --models $runs/${arm}_s$1/best.keras $runs/${arm}_s$2/best.keras \
      --data-dir $HELDOUT --split all --no-progress --output $out/$name > $out/$name.log 2>&1
  echo "$name: $(grep -o '"miou": [0-9.]*' $out/$name/metrics.json)"
done
for s in 0 1 2; do
  name=${dataset}_tta_flips_s$s
  [ -f $out/$name/metrics.json ] || python -m landseg.evaluate --model $runs/${arm}_s$s/best.keras --tta flips \
      --data-dir $HELDOUT --split all --no-progress --output $out/$name > $out/$name.log 2>&1
  echo "$name: $(grep -o '"miou": [0-9.]*' $out/$name/metrics.json)"
done
