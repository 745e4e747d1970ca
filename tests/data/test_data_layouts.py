"""Dataset discovery on the real samples and deterministic splits."""

import numpy as np
import pytest

from data_helpers import save
from landseg.data.errors import DataError
from landseg.data.layouts import DATASETS, Sample, discover, split_samples


@pytest.mark.parametrize("folder,dataset,labelled,unlabelled,groups", [
    ("deepglobe/train", "deepglobe", 10, 0, 1),
    ("deepglobe/unlabeled", "deepglobe", 0, 4, 1),
    ("dubai-aerial", "dubai", 63, 0, 7),
    ("dida-roofs", "dida", 25, 5, 1),
    ("potsdam", "potsdam", 1, 0, 1),
    ("vaihingen", "vaihingen", 1, 0, 1),
    ("loveda", "loveda", 3, 0, 1),
])
def test_real_layouts(shared_data, folder, dataset, labelled, unlabelled, groups):
    files = discover(shared_data / folder, DATASETS[dataset][1])
    assert (len(files.labelled), len(files.unlabelled)) == (labelled, unlabelled)
    for s in files.labelled:
        assert s.mask is not None and s.image != s.mask
        # image and mask belong together: same id
        stem = s.name.removesuffix("_sat")
        assert stem in s.mask.split("/")[-1]
    assert len({s.group for s in files.labelled + files.unlabelled}) == groups


def test_dida_unlabelled_are_the_images_without_labels(shared_data):
    files = discover(shared_data / "dida-roofs", "dida")
    labels = {p.stem for p in (shared_data / "dida-roofs" / "labels").iterdir()}
    assert {s.name for s in files.unlabelled} == {p.stem for p in (shared_data / "dida-roofs" / "images").iterdir()} - labels


def test_generic_and_mmseg_subfolders(tmp_path):
    for i in range(3):
        save(tmp_path / "g" / "images" / f"{i}.jpg", np.zeros((4, 4, 3), np.uint8))
    save(tmp_path / "g" / "masks" / "0.png", np.zeros((4, 4), np.uint8))
    save(tmp_path / "g" / "masks" / "9.png", np.zeros((4, 4), np.uint8))
    files = discover(tmp_path / "g", "generic")
    assert [s.name for s in files.labelled] == ["0"] and len(files.unlabelled) == 2
    assert any("9.png: mask without an image" in n for n in files.notes)
    for split in ("train", "val"):
        save(tmp_path / "m" / "img_dir" / split / "a.png", np.zeros((4, 4, 3), np.uint8))
        save(tmp_path / "m" / "ann_dir" / split / "a.png", np.zeros((4, 4), np.uint8))
    files = discover(tmp_path / "m", "mmseg")
    assert sorted(s.group for s in files.labelled) == ["train", "val"]


def test_missing_and_empty(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        discover(tmp_path / "nope", "generic")
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        discover(tmp_path, "generic")
    with pytest.raises(ValueError, match="unknown layout"):
        discover(tmp_path, "nope")


def _samples(n, groups=1):
    return [Sample(f"/d/{i:03d}.jpg", f"/d/{i:03d}.png", group=f"g{i % groups}") for i in range(n)]


def test_split_is_deterministic_and_disjoint():
    samples = _samples(20)
    train, val = split_samples(samples, 0.3, seed=0)
    assert len(val) == 6 and len(train) == 14 and not set(train) & set(val)
    assert split_samples(list(reversed(samples)), 0.3, seed=0) == (train, val)  # input order does not matter
    assert split_samples(samples, 0.3, seed=1)[1] != val


def test_split_by_group_keeps_groups_apart(shared_data):
    files = discover(shared_data / "dubai-aerial", "dubai")
    train, val = split_samples(files.labelled, 0.3, seed=0, by_group=True)
    assert {s.group for s in train}.isdisjoint({s.group for s in val})
    assert len({s.group for s in val}) == 2 and len(train) + len(val) == 63
    with pytest.raises(ValueError, match="at least 2 groups"):
        split_samples(_samples(5), 0.3, by_group=True)
