#!/bin/bash
# Do pseudo-labels of DeepGlobe's unlabelled scenes help the CPU recipe's model? (issue 9)
# The teacher is deepglobe_cpu.yaml's best.keras. It labels the 4 unlabelled shipped scenes where
# it is at least $THRESHOLD confident. Two students then continue from the teacher for the same
# extra steps at a low learning rate: one on the labelled scenes only (the control: same extra
# compute), one on the labelled scenes + the pseudo-labelled ones. Both are scored by
# landseg.evaluate on the held-out scenes 6399 and 794214 (symlinked in $HELDOUT).
#
#   experiments/pseudo_labels/run.sh experiments/runs/deepglobe_cpu_s0 "0 1"
set -u
teacher=$1; seeds=${2:-"0"}; THRESHOLD=${THRESHOLD:-0.7}; HELDOUT=${HELDOUT:-/tmp/dg_val}
cd "$(dirname "$0")/../.."
out=experiments/runs/pseudo_labels; mkdir -p $out
pseudo=$out/pseudo_t$THRESHOLD
[ -f $pseudo/summary.json ] || python -m landseg.pseudolabel --models $teacher/best.keras \
    --input ../shared/data/deepglobe/unlabeled --output $pseudo --threshold $THRESHOLD --no-progress > $out/pseudolabel.log 2>&1
common="--config experiments/configs/deepglobe_cpu.yaml train.init_from=$teacher/best.keras optimizer.lr=0.0002
        schedule.warmup_epochs=0 train.epochs=3 train.steps_per_epoch=40 train.verbose=2 run.output_dir=$out"
for seed in $seeds; do
  for arm in control pseudo; do
    run=${arm}_s$seed
    [ -f $out/$run/eval/metrics.json ] && continue
    extra=""; [ $arm = pseudo ] && extra="data.pseudo_label_dirs=[$pseudo]"
    /usr/bin/time -o $out/$run.time -f '{"wall_s": %e, "user_s": %U, "sys_s": %S}' \
      python -m landseg.train $common run.name=$run run.seed=$seed $extra > $out/$run.log 2>&1 || { echo "$run failed"; continue; }
    python -m landseg.evaluate --model $out/$run/best.keras --data-dir $HELDOUT --split all --no-progress \
      --output $out/$run/eval >> $out/$run.log 2>&1
    echo "$run: $(grep -o '"miou": [0-9.]*' $out/$run/eval/metrics.json)"
  done
done
