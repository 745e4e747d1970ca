"""experiments/compare/: every arm config loads and validates, arms differ from the baseline only in
what their comparison varies (equal budgets), and ``compare.py --dry-run`` lists every arm."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from landseg.config import _flatten, load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "experiments" / "compare"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))
BASELINE = CONFIG_DIR / "cse_unet.yaml"
# what each arm may change relative to the baseline (anything else would break the equal budget)
VARIES = {
    "cse_unet.yaml": set(),
    "unet_resnet18.yaml": {"model.name", "model.options"},
    "cse_unet_dropout.yaml": {"model.options"},
    "cse_unet_dice_focal.yaml": {"loss.name"},
    "cse_unet_ce_dice.yaml": {"loss.name"},
    "cse_unet_seed1.yaml": {"run.seed"},
}


def _compare_module():
    spec = importlib.util.spec_from_file_location("compare_script", ROOT / "experiments" / "compare.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_every_config_is_known():
    assert CONFIGS, f"no configs in {CONFIG_DIR}"
    assert {p.name for p in CONFIGS} == set(VARIES)


@pytest.fixture(scope="module")
def resolved():
    return {p.name: load_config(p) for p in CONFIGS}


def test_configs_load_and_differ_only_in_their_variable(resolved):
    base = _flatten(resolved[BASELINE.name].to_dict())
    names = set()
    for name, cfg in resolved.items():
        flat = _flatten(cfg.to_dict())
        changed = {k for k in flat if flat[k] != base.get(k)} - {"run.name"}
        assert changed == VARIES[name], f"{name} changes {sorted(changed)}"
        assert cfg.run.output_dir == "experiments/runs/compare"
        names.add(cfg.run.name)
    assert len(names) == len(resolved), "two arms share a run name (they would overwrite / resume each other)"
    # the dropout arm really turns dropout on, the loss arms use the losses the comparison names
    assert resolved["cse_unet_dropout.yaml"].model.options["dropout"] > 0
    assert resolved[BASELINE.name].model.options["dropout"] == 0
    assert {resolved[n].loss.name for n in ("cse_unet.yaml", "cse_unet_dice_focal.yaml", "cse_unet_ce_dice.yaml")} == {
        "partial_ce", "dice+focal", "ce+dice"}


def test_dry_run_lists_every_arm_and_comparison():
    out = subprocess.run([sys.executable, str(ROOT / "experiments" / "compare.py"), "--dry-run"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split("\t", 1) for line in out.stdout.splitlines())
    mod = _compare_module()
    assert set(lines) == set(mod.STEPS)
    trained = [cmd.split("--config ", 1)[1].split()[0] for cmd in lines.values() if " -m landseg.train " in cmd]
    assert sorted(Path(t).name for t in trained) == [p.name for p in CONFIGS]
    # every comparison row is scored by the project's evaluate (or the ensemble wrapper of its functions)
    for key, _title, rows, _varies in mod.COMPARISONS:
        for _label, step in rows:
            assert "landseg.evaluate" in lines[step] or "ensemble-eval" in lines[step]
    assert "landseg.self_train" in lines["cse_unet_selftrain"]
    # --only picks a comparison with what it needs, nothing else
    only = subprocess.run([sys.executable, str(ROOT / "experiments" / "compare.py"), "--dry-run", "--only", "loss"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert [ln.split("\t")[0] for ln in only.stdout.splitlines()] == [
        "cse_unet", "eval:cse_unet", "cse_unet_dice_focal", "eval:cse_unet_dice_focal", "cse_unet_ce_dice",
        "eval:cse_unet_ce_dice"]
