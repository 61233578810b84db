"""ImageNet from a local copy: conversion of both layouts to JPEG bytes in HDF5, clear errors
for bad paths, label variants without image copies, the Inception preprocessing, and streamed
training on the converted file; all on a tiny ILSVRC-shaped copy the tests build."""

import io
import os
import re
import shutil
import tarfile
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from rethink.data.encoded import EncodedImages, read_encoded_labels
from rethink.data.imagenet import ImagenetPathError, convert_imagenet, find_imagenet
from rethink.data.variants import VariantNameError, write_variant_file
from rethink.training.inception_preprocessing import inception_input
from rethink.training.outputs import HISTORY_COLUMNS
from rethink.training.settings import RunConfig
from rethink.workflow.launch import train_job
from tests.conftest import REPO, copy_workflow, run_snakemake
from tests.fake_imagenet import WNIDS, WORDS, write_archives, write_folders
from tests.test_workflow import job_stats


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Both layouts of one fake copy, and each converted: {layout: (FakeImagenet, h5 path)}."""
    tmp = tmp_path_factory.mktemp("imagenet")
    out = {}
    for layout, write in (("archives", write_archives), ("folders", write_folders)):
        fake = write(tmp / layout)
        convert_imagenet(fake.root, tmp / f"{layout}.h5", {"seed": 0})
        out[layout] = fake, tmp / f"{layout}.h5"
    return out


def stored_images(path, split):
    images = EncodedImages(path, split)
    return [images[i] for i in range(len(images))], images.labels


@pytest.mark.parametrize("layout", ["archives", "folders"])
def test_every_image_converts_with_its_label_and_rgb_jpegs_keep_their_bytes(converted, layout):
    fake, path = converted[layout]
    classes = sorted(WNIDS)
    train, train_labels = stored_images(path, "train")
    expected = [(data, classes.index(w)) for w in classes for data in fake.train[w]]
    assert train_labels.tolist() == [label for _, label in expected]
    test, test_labels = stored_images(path, "test")
    assert test_labels.tolist() == [classes.index(w) for w, _ in fake.val]
    assert test == [data for _, data in fake.val]  # validation images: unchanged bytes
    reencoded = 0
    for data, (original, _) in zip(train, expected, strict=True):
        with Image.open(io.BytesIO(original)) as image:
            plain = image.format == "JPEG" and image.mode == "RGB"
        if plain:
            assert data == original
        else:  # the CMYK JPEG, the greyscale JPEG, the PNG: now RGB JPEGs of the same picture
            reencoded += 1
            with Image.open(io.BytesIO(data)) as image, Image.open(io.BytesIO(original)) as old:
                assert (image.format, image.mode) == ("JPEG", "RGB")
                difference = np.abs(
                    np.asarray(image, float) - np.asarray(old.convert("RGB"), float)
                )
                assert difference.mean() < 5  # quality 95, on noise of std 30
        with Image.open(io.BytesIO(data)) as image:
            assert image.size == (48, 40)
    assert reencoded == 3
    _, _, attrs = read_encoded_labels(path)
    assert attrs["reencoded"] == 3 and attrs["image_format"] == "jpeg"


def test_both_layouts_give_the_same_images_and_labels_and_the_devkit_names_the_classes(
    converted,
):
    (_, archives), (_, folders) = converted["archives"], converted["folders"]
    for split in ("train", "test"):
        assert stored_images(archives, split)[0] == stored_images(folders, split)[0]
        np.testing.assert_array_equal(
            stored_images(archives, split)[1], stored_images(folders, split)[1]
        )
    _, classes, attrs = read_encoded_labels(archives)
    assert classes == sorted(WNIDS)
    assert attrs["class_names"] == [WORDS[w] for w in sorted(WNIDS)]
    assert read_encoded_labels(folders)[2]["class_names"] == sorted(WNIDS)  # no devkit: wnids


def test_the_conversion_reports_its_counts_and_records_the_seed(converted, tmp_path):
    fake, _ = converted["archives"]
    counts = convert_imagenet(fake.root, tmp_path / "seeded.h5", {"seed": 5})
    n_train = sum(len(images) for images in fake.train.values())
    assert counts == {"train": n_train, "test": len(fake.val), "reencoded": 3}
    assert read_encoded_labels(tmp_path / "seeded.h5")[2]["seed"] == 5


def test_conversion_is_deterministic(converted, tmp_path):
    fake, path = converted["archives"]
    convert_imagenet(fake.root, tmp_path / "again.h5", {"seed": 0})
    assert (tmp_path / "again.h5").read_bytes() == path.read_bytes()


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda root: None, "config key 'data.imagenet_path' is not set"),
        (lambda root: root / "nowhere", "is not a folder"),
        (
            lambda root: (write_archives(root), os.remove(root / "ILSVRC2012_devkit_t12.tar.gz")),
            "but not ILSVRC2012_devkit_t12.tar.gz",
        ),
        (lambda root: (root / "train" / "n01440764").mkdir(parents=True), "in val/"),
        (lambda root: root.mkdir(), "nor class folders {wnid}/ in train/ and val/"),
    ],
    ids=["unset", "missing", "no devkit", "no val folder", "empty"],
)
def test_a_wrong_or_incomplete_path_fails_in_one_line_naming_what_is_missing(
    tmp_path, setup, message
):
    root = tmp_path / "ilsvrc"
    result = setup(root)
    path = root if result is not None or root.exists() else None
    if message == "is not a folder":
        path = tmp_path / "nowhere"
    with pytest.raises(ImagenetPathError) as error:
        find_imagenet(path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_truncated_archive_names_itself(tmp_path):
    fake = write_archives(tmp_path / "ilsvrc")
    data = (fake.root / "ILSVRC2012_img_train.tar").read_bytes()
    (fake.root / "ILSVRC2012_img_train.tar").write_bytes(data[: len(data) // 2])
    with pytest.raises(Exception, match="ILSVRC2012_img_train.tar") as error:
        convert_imagenet(fake.root, tmp_path / "out.h5", {"seed": 0})
    assert isinstance(error.value, (tarfile.TarError, Exception))
    assert not (tmp_path / "out.h5").exists()  # nothing half-written left


@pytest.mark.slow  # runs the real Snakemake workflow
def test_the_workflow_refuses_a_bad_path_before_any_job(tmp_path):
    study = {
        "datasets": ["imagenet"],
        "data": {"imagenet_path": str(tmp_path / "ilsvrc")},
        "variants": {"names": ["true"]},
        "runs": [],
        "training": {"record_examples": False},
    }
    (tmp_path / "ilsvrc").mkdir()
    write_archives(tmp_path / "ilsvrc")
    os.remove(tmp_path / "ilsvrc" / "ILSVRC2012_img_val.tar")
    copy_workflow(tmp_path / "study", study)
    result = run_snakemake(tmp_path / "study", "--cores", "1", repo=tmp_path / "study")
    assert result.returncode != 0
    assert "but not ILSVRC2012_img_val.tar" in result.stdout + result.stderr
    assert not (tmp_path / "study" / "results").exists()


@pytest.mark.slow  # runs the real Snakemake workflow
def test_pixel_variants_of_imagenet_are_refused_before_any_job(tmp_path):
    write_folders(tmp_path / "ilsvrc")
    study = {
        "datasets": ["imagenet"],
        "data": {"imagenet_path": str(tmp_path / "ilsvrc")},
        "variants": {"names": ["true", "shuffled-pixels"]},
        "training": {"record_examples": False},
    }
    copy_workflow(tmp_path / "study", study)
    result = run_snakemake(tmp_path / "study", "-n", repo=tmp_path / "study")
    assert result.returncode != 0
    assert "'shuffled-pixels' changes pixels, and dataset 'imagenet' is stored as JPEG" in (
        result.stdout + result.stderr
    )


def test_label_variants_store_labels_only_and_read_the_source_images(converted, tmp_path):
    _, source = converted["archives"]
    write_variant_file(str(source), str(tmp_path / "random.h5"), "random", seed=0)
    labels, classes, attrs = read_encoded_labels(tmp_path / "random.h5")
    assert os.path.getsize(tmp_path / "random.h5") < 20_000 < os.path.getsize(source) / 2
    assert stored_images(tmp_path / "random.h5", "train")[0] == stored_images(source, "train")[0]
    original = read_encoded_labels(source)[0]
    assert (labels["train"] != original["train"]).any()
    np.testing.assert_array_equal(labels["test"], original["test"])  # test labels stay true
    assert attrs["variant"] == "random" and classes == sorted(WNIDS)
    with pytest.raises(VariantNameError, match="stores JPEG files"):
        write_variant_file(str(source), str(tmp_path / "g.h5"), "gaussian", seed=0)


def test_inception_preprocessing_central_crop_and_seeded_augmentation(converted):
    _, path = converted["folders"]
    image = EncodedImages(path, "train")[5]  # JPEG bytes
    plain = inception_input(image, 32, augment=False)
    assert plain.shape == (3, 32, 32) and plain.min() >= -1 and plain.max() <= 1
    torch.testing.assert_close(plain, inception_input(image, 32, augment=False))

    def augmented(seed):
        return inception_input(image, 32, True, torch.Generator().manual_seed(seed))

    torch.testing.assert_close(augmented(1), augmented(1))
    assert not torch.equal(augmented(1), augmented(2))
    assert augmented(1).min() >= -1 and augmented(1).max() <= 1


def test_a_streamed_run_learns_the_fake_classes_and_reports_top5(converted, tmp_path):
    _, path = converted["archives"]
    config = RunConfig(
        "mlp1x512", crop_size=32, batch_size=6, max_epochs=15, lr=0.05, device="cpu",
        precision="fp32", eval_batch_size=8, train_eval_images=12, regularizer="augment",
    )  # fmt: skip
    summary = train_job(str(path), str(tmp_path / "run"), config, str(tmp_path / "log"))
    # three classes: top-5 would hold them all, so it is left empty (measured above 5 classes)
    assert summary["test_top5"] is None and summary["best_test_top5"] is None
    assert summary["best_test_acc"] >= 2 / 3  # each class its own colour
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert list(history.columns) == HISTORY_COLUMNS and len(history) == summary["epochs"]
    assert history.test_top5.isna().all() and history.train_top5.isna().all()


@pytest.mark.slow  # runs the real Snakemake workflow
def test_the_imagenet_study_lists_table2s_grid_once_the_path_is_set(tmp_path):
    write_archives(tmp_path / "ilsvrc")
    shutil.copy(REPO / "config.yaml", tmp_path)  # run where the default study is, as users do
    study = ["--configfile", str(REPO / "studies" / "imagenet.yaml")]
    unset = run_snakemake(tmp_path, "--dry-run", *study)
    assert unset.returncode != 0
    assert "config key 'data.imagenet_path' is not set" in unset.stdout + unset.stderr
    result = run_snakemake(
        tmp_path, "--dry-run", *study, "--config", f"data={{imagenet_path: {tmp_path}/ilsvrc}}"
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert job_stats(result.stdout) == {
        "write_dataset": "1", "write_variant": "2", "train_run": "7", "aggregate_runs": "1",
        "plot_figure": "3", "write_table2": "1",
    }  # fmt: skip
    for run in ("true/inception-v3/augment+dropout+wd", "random/inception-v3/dropout+wd"):
        assert f"results/runs/imagenet/{run}/seed0/summary.json" in result.stdout
    # each run on one node's 8 GPUs, for 10 + 12 x 100 epochs x 1.28 M images / 8 minutes
    assert Counter(re.findall(r"resources: .*gpu=(\d+), runtime=(\d+)", result.stdout)) == {
        ("8", "203"): 7
    }
