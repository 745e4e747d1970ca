#!/bin/bash
# The user-facing safety checks of issues 23 and 24, run as a user would (CLI, real files), with
# the figures each prints. The test suite holds the same cases as assertions; this script shows
# them end to end and measures time and memory where the issue asks for them.
#
#   bash experiments/safety_checks.sh            # ~2 min on 2 cores; work in a temporary folder
set -u
cd "$(dirname "$0")/.."
repo=$PWD; w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
py=${PYTHON:-python}
say() { printf '\n### %s\n' "$*"; }
sums() { find "$1" -type f ! -path '*/.landseg/*' -print0 | sort -z | xargs -0 sha1sum; }

say "a tiny model trained on the built-in sample (1 step)"
$py -m landseg.train model.name=cse_unet model.options.base_width=4 train.epochs=1 train.steps_per_epoch=1 \
    train.batch_size=2 data.crop_size=64 run.name=tiny run.output_dir="$w/runs" run.tensorboard_dir="$w/tb" \
    train.verbose=0 > "$w/train.log" 2>&1 || { tail -5 "$w/train.log"; exit 1; }
model="$w/runs/tiny/best.keras"; echo "exit 0: $model"

say "issue 24: predict --input OUT/colour --output OUT"
mkdir -p "$w/OUT/colour"; $py - "$w/OUT/colour" <<'EOF'
import sys, numpy as np
from PIL import Image
for i in range(3):
    Image.fromarray(np.random.default_rng(i).integers(0, 255, (96, 96, 3), np.uint8)).save(f"{sys.argv[1]}/scene{i}.png")
EOF
sums "$w/OUT" > "$w/before"
$py -m landseg.predict --model "$model" --input "$w/OUT/colour" --output "$w/OUT" --no-progress; echo "exit $?"
sums "$w/OUT" | diff -q "$w/before" - > /dev/null && echo "sha1 of all $(wc -l < "$w/before") input files unchanged" \
    || echo "CHANGED FILES"

say "issue 24: pseudolabel --input ds/images --output ds (hand labels in ds/masks)"
mkdir -p "$w/ds/images" "$w/ds/masks"; cp "$w"/OUT/colour/*.png "$w/ds/images/"
for f in "$w"/ds/images/*.png; do cp "$f" "$w/ds/masks/$(basename "$f")"; done
sums "$w/ds" > "$w/before"
$py -m landseg.pseudolabel --model "$model" --input "$w/ds/images" --output "$w/ds" --threshold 0.9 --no-progress; echo "exit $?"
sums "$w/ds" | diff -q "$w/before" - > /dev/null && echo "sha1 of all $(wc -l < "$w/before") image and mask files unchanged" \
    || echo "CHANGED FILES"

say "issue 24: a billion-laughs config (9^11 list items under data.pseudo_label_dirs)"
$py - "$w/laughs.yaml" <<'EOF'
import sys
lines = ['lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
lines += [f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * 9) + "]" for i in range(1, 12)]
open(sys.argv[1], "w").write("\n".join(lines) + "\ndata:\n  pseudo_label_dirs: *lol11\n")
EOF
/usr/bin/time -f 'wall %e s, peak memory %M kB' $py -m landseg.train --config "$w/laughs.yaml" run.output_dir="$w/runs"
echo "exit $?"

say "issue 24: a class_dict.csv with two classes named red"
printf 'name,r,g,b\nred,255,0,0\ngreen,0,255,0\nred,200,0,0\n' > "$w/class_dict.csv"
$py -c "
import sys
from landseg.classmaps import load_classmap
try:
    load_classmap(sys.argv[1])
except Exception as e:
    print(type(e).__name__ + ':', e)
else:
    print('ACCEPTED')" "$w/class_dict.csv"

say "issue 23: a crafted .pth whose first pickle runs a command, as encoder_weights"
$py - "$w" <<'EOF'
import os, pickle, sys
w = sys.argv[1]
class Boom:
    def __reduce__(self):
        return (os.system, (f"touch {w}/PWNED",))
# a legacy torch.save file: its first pickle (torch's magic number) replaced by one that runs a command
with open(f"{w}/evil.pth", "wb") as f:
    f.write(pickle.dumps(Boom(), protocol=2))
    f.write(pickle.dumps(1001, protocol=2))
    f.write(pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2))
EOF
$py -c "
import sys
from landseg.models import build_model
try:
    build_model('lite_unet', num_classes=6, input_shape=(64, 64, 3), encoder_weights=sys.argv[1])
except Exception as e:
    print(type(e).__name__ + ':', e)" "$w/evil.pth"
[ -e "$w/PWNED" ] && echo "THE COMMAND RAN" || echo "the command did not run (no $w/PWNED)"

say "issue 23: each run-folder file name is a string literal in exactly one module of landseg/"
for n in best.keras last.keras model_info.json config.yaml history.csv state.json hist_reference.npy run.lock; do
    printf '%-20s %s\n' "$n" "$(grep -rlF "\"$n\"" landseg --include='*.py' | tr '\n' ' ')"
done

say "issue 23: your own dataset: data.name=my_fields with a YAML class map (names, palette, mask_kind: index)"
$py - "$w" <<'EOF'
import sys, numpy as np
from pathlib import Path
from PIL import Image
w = Path(sys.argv[1]); rng = np.random.default_rng(0)
for sub in ("images", "masks"):
    (w / "fields" / sub).mkdir(parents=True)
for i in range(4):
    Image.fromarray(rng.integers(0, 255, (96, 96, 3), np.uint8)).save(w / "fields/images" / f"f{i}.png")
    Image.fromarray(rng.integers(0, 3, (96, 96), np.uint8)).save(w / "fields/masks" / f"f{i}.png")
(w / "fields.yaml").write_text("class_names: [soil, wheat, maize]\npalette: [[120, 80, 40], [240, 220, 0], [0, 160, 0]]\n"
                               "mask_kind: index\n")
(w / "class_dict.csv").write_text("name,r,g,b\nsoil,120,80,40\nwheat,240,220,0\nmaize,0,160,0\n")
EOF
common="data.layout=generic data.data_dir=$w/fields model.name=cse_unet model.options.base_width=4 train.epochs=1
        train.steps_per_epoch=1 train.batch_size=2 data.crop_size=64 run.output_dir=$w/runs run.tensorboard_dir=$w/tb
        train.verbose=0"
$py -m landseg.train data.name=my_fields data.classmap="$w/fields.yaml" run.name=fields $common > "$w/fields.log" 2>&1
echo "YAML class map: exit $?"
$py -m landseg.train data.name=my_fields data.classmap="$w/class_dict.csv" run.name=fields_csv $common 2>&1 | grep -v '^WARNING\|^I0000\|^E0000\|absl' | tail -3
echo "class_dict.csv (RGB) over index masks: exit ${PIPESTATUS[0]}"
