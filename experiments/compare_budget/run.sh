#!/bin/bash
# Same-wall-budget comparison on real imagery, several seeds: the CPU recipe's pretrained
# lite_unet against CSE-UNet and UNet (ResNet-34) trained from scratch. Each arm is the dataset's
# recipe with only the model (and the epochs x steps that fit the budget) changed; every run is
# then scored by `landseg.evaluate` on whole held-out tiles/scenes it never saw.
#
#   experiments/compare_budget/run.sh dubai  "0 1 2"     # then: python experiments/compare_budget/summarise.py
#
# Held-out folders (the recipes' validation split, split_seed 0), as a user with new tiles has them:
#   dubai:     Tiles 3 and 5 symlinked into $HELDOUT (default /tmp/dubai_val)
#   deepglobe: scenes 6399 and 794214 symlinked into $HELDOUT (default /tmp/dg_val)
set -u
dataset=$1; seeds=${2:-"0 1 2"}
cd "$(dirname "$0")/../.."
case $dataset in
  dubai)     cfg=experiments/configs/dubai_cpu.yaml;     heldout=${HELDOUT:-/tmp/dubai_val}
    # arm: model overrides | epochs x steps chosen so each run takes about 6 min of quiet 2-core wall time
    arms=("lite_pretrained|model.name=lite_unet train.epochs=6 train.steps_per_epoch=40"
          "cse_unet_w16_scratch|model.name=cse_unet model.options.base_width=16 train.epochs=4 train.steps_per_epoch=30"
          "unet_r34_scratch|model.name=unet model.options.backbone=resnet34 train.epochs=3 train.steps_per_epoch=15") ;;
  deepglobe) cfg=experiments/configs/deepglobe_cpu.yaml; heldout=${HELDOUT:-/tmp/dg_val}
    arms=("lite_pretrained|model.name=lite_unet train.epochs=5 train.steps_per_epoch=40"
          "cse_unet_w16_scratch|model.name=cse_unet model.options.base_width=16 data.crop_size=256 train.epochs=4 train.steps_per_epoch=30"
          "unet_r34_scratch|model.name=unet model.options.backbone=resnet34 data.crop_size=256 train.epochs=3 train.steps_per_epoch=15") ;;
  *) echo "usage: $0 dubai|deepglobe [seeds]"; exit 2 ;;
esac
out=experiments/runs/compare_budget; mkdir -p $out
for seed in $seeds; do
  for arm in "${arms[@]}"; do
    name=${arm%%|*}; overrides=${arm#*|}
    run=${dataset}_${name}_s$seed
    [ -f $out/$run/eval/metrics.json ] && { echo "$run: done"; continue; }
    echo "=== $run $(date +%T)"
    /usr/bin/time -o $out/$run.time -f '{"wall_s": %e, "user_s": %U, "sys_s": %S, "maxrss_kb": %M}' \
      python -m landseg.train --config $cfg run.name=$run run.output_dir=$out run.seed=$seed train.verbose=2 $overrides \
      > $out/$run.log 2>&1 || { echo "$run: training failed (see $out/$run.log)"; continue; }
    python -m landseg.evaluate --model $out/$run/best.keras --data-dir $heldout --split all --no-progress \
      --output $out/$run/eval >> $out/$run.log 2>&1 || echo "$run: evaluation failed"
    echo "=== $run done $(date +%T): $(grep -o '"miou": [0-9.]*' $out/$run/eval/metrics.json)"
  done
done
