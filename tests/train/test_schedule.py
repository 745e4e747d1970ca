"""Learning-rate schedules as functions of the global step (what makes them survive a resume)."""

import math

import pytest

from landseg.config_schema import ScheduleSection
from landseg.training.callbacks import lr_at

BASE = {"warmup_epochs": 0, "min_lr_fraction": 0.1, "plateau_factor": 0.5, "plateau_patience": 2}


def test_cosine_endpoints_and_midpoint():
    s = ScheduleSection(**dict(BASE, name="cosine"))
    assert lr_at(s, 1.0, 0, 101, 10) == pytest.approx(1.0)
    assert lr_at(s, 1.0, 50, 100, 10) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_at(s, 1.0, 101, 101, 10) == pytest.approx(0.1)


def test_one_cycle_rises_to_peak_then_anneals():
    s = ScheduleSection(**dict(BASE, name="one_cycle"))
    lrs = [lr_at(s, 1.0, i, 100, 10) for i in range(100)]
    peak = max(range(100), key=lambda i: lrs[i])
    assert peak == 30 and lrs[peak] == pytest.approx(1.0)
    assert lrs[0] == pytest.approx(1.0 / 25)
    assert all(a <= b for a, b in zip(lrs[:30], lrs[1:31])) and all(a >= b for a, b in zip(lrs[30:], lrs[31:]))


def test_warmup_constant_and_plateau_scale():
    s = ScheduleSection(**dict(BASE, name="constant", warmup_epochs=1))
    assert lr_at(s, 2.0, 0, 100, 10) == pytest.approx(0.2)
    assert lr_at(s, 2.0, 5, 100, 10) == pytest.approx(2.0 * (0.1 + 0.9 * 0.5))
    assert lr_at(s, 2.0, 50, 100, 10) == pytest.approx(2.0)
    p = ScheduleSection(**dict(BASE, name="reduce_on_plateau"))
    assert lr_at(p, 2.0, 50, 100, 10, plateau_scale=0.25) == pytest.approx(0.5)
