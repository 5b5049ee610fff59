"""Training: data folders and masks, the loss, a tiny run that learns, and fine-tuning through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from agents.segmentation.datasets import CropSampler, Sample, decode_mask, folder_samples, simulated_samples
from agents.segmentation.image_input import ImageError
from agents.segmentation.models import load_segmenter, read_model_record
from agents.segmentation.sim_data import HELD_OUT_SEED0
from agents.segmentation.training import TrainConfig, class_weights, segmentation_loss, train
from agents.segmentation.unet import UNet
from controller.cli import main

from .conftest import disks_image

NASA_DIR = Path(__file__).resolve().parents[4] / "shared" / "data" / "nasa-superalloy"


def colour_mask(mask: np.ndarray) -> np.ndarray:
    """RGBA colour mask in the NASA convention: grey background, blue class 1, red class 2."""
    rgba = np.full((*mask.shape, 4), 255, np.uint8)
    rgba[..., :3] = 90
    rgba[mask == 1, :3] = (0, 0, 255)
    rgba[mask == 2, :3] = (255, 0, 0)
    return rgba


def test_decode_mask_colours_and_ids() -> None:
    ids = np.array([[0, 1], [2, 0]], np.uint8)
    np.testing.assert_array_equal(decode_mask(colour_mask(np.pad(ids, 4)), 3)[4:6, 4:6], ids)
    np.testing.assert_array_equal(decode_mask(ids.astype(np.int32), 3), ids)
    with pytest.raises(ImageError, match=r"class ids must lie in \[0, 2\)"):
        decode_mask(ids, 2)
    with pytest.raises(ImageError, match="must be integer"):
        decode_mask(ids.astype(np.float32), 3)


def test_folder_pairs_match_by_stem(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    (tmp_path / "ann").mkdir()
    for stem in ("a", "b"):
        image, mask = disks_image(rng)
        tifffile.imwrite(tmp_path / "img" / f"{stem}.tif", image)
    tifffile.imwrite(tmp_path / "ann" / "a_mask.tif", colour_mask(mask))
    Image.fromarray(mask).save(tmp_path / "ann" / "b.png")
    with pytest.raises(ImageError, match="mixes colour masks and class-id masks"):
        folder_samples(tmp_path / "img", tmp_path / "ann")
    (tmp_path / "ann" / "b.png").unlink()
    with pytest.raises(ImageError, match=r"no mask b\.\* or b_mask\.\*"):
        folder_samples(tmp_path / "img", tmp_path / "ann")
    tifffile.imwrite(tmp_path / "ann" / "b_mask.tif", colour_mask(mask[:32]))
    with pytest.raises(ImageError, match="does not match image"):
        folder_samples(tmp_path / "img", tmp_path / "ann")
    tifffile.imwrite(tmp_path / "ann" / "b_mask.tif", colour_mask(mask))
    tifffile.imwrite(tmp_path / "ann" / "c_mask.tif", colour_mask(mask))
    with pytest.raises(ImageError, match="masks without an image: c_mask"):
        folder_samples(tmp_path / "img", tmp_path / "ann")
    (tmp_path / "ann" / "c_mask.tif").unlink()
    samples, colour = folder_samples(tmp_path / "img", tmp_path / "ann")
    assert colour and [s.name for s in samples] == ["a", "b"]
    assert samples[1].image.shape == (1, 64, 64) and samples[1].mask.max() == 1


def test_simulator_training_seeds_stay_below_the_held_out_ones() -> None:
    with pytest.raises(ValueError, match="training seeds"):
        simulated_samples([HELD_OUT_SEED0])


def test_crops_are_seeded_and_augmented() -> None:
    rng = np.random.default_rng(0)
    image, mask = disks_image(rng)
    samples = [Sample(image[None].astype(np.float32) / 255, mask, "a")]
    first = CropSampler(samples, 32, seed=7).batch(4)
    second = CropSampler(samples, 32, seed=7).batch(4)
    torch.testing.assert_close(first, second)
    assert first[0].shape == (4, 1, 32, 32) and first[1].dtype == torch.int64


def test_focus_crops_contain_the_focus_class_and_others_need_not() -> None:
    rng = np.random.default_rng(0)
    mask = np.zeros((100, 120), np.uint8)
    mask[90, 5] = mask[3, 110] = 1  # two boundary pixels, near opposite corners
    samples = [
        Sample(rng.random((2, 100, 120), dtype=np.float32), mask, "sparse"),
        Sample(rng.random((2, 100, 120), dtype=np.float32), np.zeros_like(mask), "none"),
    ]
    _, focused = CropSampler(samples, 32, seed=1, focus_class=1, focus_share=1.0).batch(64)
    _, plain = CropSampler(samples, 32, seed=1).batch(64)
    assert bool((focused == 1).flatten(1).any(1).all())
    assert (plain == 1).flatten(1).any(1).float().mean() < 0.2
    with pytest.raises(ValueError, match="focus_share"):
        CropSampler(samples, 32, seed=1, focus_class=1, focus_share=1.5)


def test_added_noise_is_bounded_by_max_noise_sigma() -> None:
    flat = [Sample(np.full((1, 64, 64), 0.5, np.float32), np.zeros((64, 64), np.uint8), "flat")]

    def pixel_spread(max_noise_sigma: float) -> float:
        sampler = CropSampler(flat, 32, seed=3, max_noise_sigma=max_noise_sigma)
        images, _ = sampler.batch(32)
        return float(images.flatten(1).std(1).max())  # gain, gamma and offset leave a flat crop flat

    assert pixel_spread(0.0) == 0.0
    assert 0.1 < pixel_spread(0.25) < 0.3


def test_class_weights_favour_rare_classes_within_the_cap() -> None:
    weights = class_weights(np.array([0.81, 0.01, 0.18, 0.0]), max_ratio=10.0).numpy()
    assert weights[1] / weights[0] == pytest.approx(9.0)  # (0.81 / 0.01) ** 0.5
    assert weights[3] / weights[0] == pytest.approx(10.0)  # absent class: capped
    assert weights.mean() == pytest.approx(1.0)


def test_loss_is_small_for_confident_right_answers_and_large_for_wrong_ones() -> None:
    target = torch.randint(0, 3, (2, 8, 8))
    right = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 20
    wrong = torch.roll(right, 1, dims=1)
    weights = torch.ones(3)
    assert segmentation_loss(right, target, weights, 1.0) < 0.01
    assert segmentation_loss(wrong, target, weights, 1.0) > 10


def test_a_tiny_run_learns_disks() -> None:
    rng = np.random.default_rng(0)
    samples = []
    for i in range(4):
        image, mask = disks_image(rng)
        samples.append(Sample(image[None].astype(np.float32) / 255, mask, f"d{i}"))
    torch.manual_seed(0)
    model = UNet(1, 2, (4, 8), stem_stride=2)
    config = TrainConfig(epochs=4, steps_per_epoch=10, crop_px=32, batch_size=4, learning_rate=1e-2)
    model, result = train(samples[:3], samples[3:], model, config, seed=0)
    losses = [h["train_loss"] for h in result["history"]]
    assert losses[-1] < 0.75 * losses[0]
    assert result["best"]["miou"] > 0.7


def disk_folders(root: Path) -> list[str]:
    """Three RGB disk images and their NASA-style colour masks under `root`; the CLI's folder arguments."""
    rng = np.random.default_rng(1)
    for folder in ("img", "ann"):
        (root / folder).mkdir()
    for i in range(3):
        image, mask = disks_image(rng)
        mask[(mask == 1) & (rng.random(mask.shape) < 0.1)] = 2  # a few "tertiary" pixels
        Image.fromarray(image).convert("RGB").save(root / "img" / f"s{i}.png")
        tifffile.imwrite(root / "ann" / f"s{i}_mask.tif", colour_mask(mask))
    return ["--images", str(root / "img"), "--masks", str(root / "ann")]


def test_fine_tune_changes_channels_and_classes(tmp_path: Path, tiny_model_path: Path, capsys) -> None:
    out = tmp_path / "tuned.pt"
    argv = ["seg", "train", *disk_folders(tmp_path)]
    argv += ["--init", str(tiny_model_path), "--out", str(out), "--epochs", "2", "--steps-per-epoch", "3", "--json"]
    argv += ["--threads", "1"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["in_channels"] == 1 and summary["classes"] == [
        "matrix",
        "secondary_gamma_prime",
        "tertiary_gamma_prime",
    ]
    record = read_model_record(out)
    assert record["provenance"]["init"] == str(tiny_model_path)
    # the first and last layers change shape (1 grey channel, 3 classes): they start afresh
    assert {"encoders.0.0", "head"} <= set(record["provenance"]["reinitialised_layers"])
    assert load_segmenter(out).predict(np.zeros((1, 40, 40), np.float32)).shape == (40, 40)


def test_the_seed_fixes_the_initial_weights_too(tmp_path: Path, capsys) -> None:
    folders = disk_folders(tmp_path)

    def weights(seed: int, name: str) -> dict[str, torch.Tensor]:
        out = tmp_path / f"{name}.pt"
        argv = ["seg", "train", *folders, "--out", str(out), "--epochs", "1", "--steps-per-epoch", "1"]
        assert main([*argv, "--seed", str(seed), "--threads", "1", "--json"]) == 0
        return read_model_record(out)["state_dict"]

    first, again, other = weights(3, "first"), weights(3, "again"), weights(4, "other")
    capsys.readouterr()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_train_rejects_bad_folders(tmp_path: Path, capsys) -> None:
    argv = [
        "seg",
        "train",
        "--images",
        str(tmp_path / "none"),
        "--masks",
        str(tmp_path),
        "--out",
        str(tmp_path / "m.pt"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no such directory" in err and "Traceback" not in err
    argv = ["seg", "train", "--init", "nope", "--out", str(tmp_path / "m.pt"), "--sim-frames", "1", "--threads", "1"]
    assert main(argv) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


@pytest.mark.skipif(not NASA_DIR.is_dir(), reason=f"NASA superalloy data not present at {NASA_DIR}")
def test_nasa_masks_decode_to_three_classes() -> None:
    samples, colour = folder_samples(NASA_DIR / "val", NASA_DIR / "val_annot")
    assert colour and len(samples) == 4
    fractions = np.bincount(np.concatenate([s.mask.ravel() for s in samples]), minlength=3) / (4 * 512 * 512)
    assert 0.3 < fractions[1] < 0.7 and 0.005 < fractions[2] < 0.1


def test_boundary_dilation_widens_lines_but_not_into_pores() -> None:
    from agents.segmentation.datasets import dilate_boundaries

    mask = np.zeros((9, 9), np.uint8)
    mask[:, 4] = 1
    mask[:, 6:] = 2
    (widened,) = dilate_boundaries([Sample(np.zeros((1, 9, 9), np.float32), mask, "m")], 1, 1)
    np.testing.assert_array_equal(widened.mask[0], [0, 0, 0, 1, 1, 1, 2, 2, 2])
    assert (mask[:, 4] == 1).all()  # the input is left alone
