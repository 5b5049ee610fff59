"""`grainloop seg predict`: a correct mask file for good input, exit code 2 and one line for bad input."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from agents.segmentation.models import load_segmenter
from controller.cli import main


def predict(image: Path, model: Path | str, out: Path) -> int:
    return main(["seg", "predict", str(image), "--model", str(model), "--out", str(out)])


@pytest.mark.parametrize("suffix", [".png", ".tif", ".npy"])
def test_mask_has_the_image_size_and_the_models_class_ids(tmp_path: Path, tiny_model_path: Path, suffix: str) -> None:
    image = np.random.default_rng(0).random((2, 75, 61)).astype(np.float32) * 500
    np.save(tmp_path / "survey.npy", image)
    out = tmp_path / f"mask{suffix}"
    assert predict(tmp_path / "survey.npy", tiny_model_path, out) == 0
    if suffix == ".png":
        with Image.open(out) as im:
            assert im.mode == "L"
            mask = np.asarray(im)
    elif suffix == ".tif":
        mask = tifffile.imread(out)
    else:
        mask = np.load(out)
    assert mask.shape == (75, 61) and mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, load_segmenter(tiny_model_path).predict(image))


def test_default_model_on_a_grey_png(tmp_path: Path, capsys) -> None:
    """A one-channel PNG with the NASA model: a 0/1/2 mask, and a summary line on stdout."""
    grey = (np.random.default_rng(1).random((40, 52)) * 255).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "micrograph.png")
    assert predict(tmp_path / "micrograph.png", "nasa-superalloy", tmp_path / "mask.png") == 0
    assert "wrote" in capsys.readouterr().out
    with Image.open(tmp_path / "mask.png") as im:
        mask = np.asarray(im)
    assert mask.shape == (40, 52) and mask.max() <= 2


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    cases = {}
    (tmp_path / "empty.tif").write_bytes(b"")
    cases["empty file"] = (tmp_path / "empty.tif", "cannot read")
    (tmp_path / "corrupt.tif").write_bytes(b"II*\x00" + b"\x13" * 64)
    cases["corrupt TIFF"] = (tmp_path / "corrupt.tif", "cannot read|got shape")
    np.save(tmp_path / "text.npy", np.array([["a", "b"]] * 20))
    cases["wrong dtype"] = (tmp_path / "text.npy", "numeric array")
    np.save(tmp_path / "line.npy", np.zeros(100, np.float32))
    cases["wrong shape"] = (tmp_path / "line.npy", r"expected \(H, W\)")
    np.save(tmp_path / "grey.npy", np.zeros((64, 64), np.float32))
    cases["one channel for a two-channel model"] = (tmp_path / "grey.npy", "needs 2 channel")
    np.save(tmp_path / "tiny.npy", np.zeros((2, 4, 4), np.float32))
    cases["too small"] = (tmp_path / "tiny.npy", "smaller than")
    cases["missing"] = (tmp_path / "absent.tif", "no such file")
    return cases


def test_bad_images_exit_2_with_one_line_and_no_traceback(tmp_path: Path, tiny_model_path: Path, capsys) -> None:
    for what, (path, message) in _bad_inputs(tmp_path).items():
        assert predict(path, tiny_model_path, tmp_path / "mask.png") == 2, what
        err = capsys.readouterr().err
        assert re.search(message, err), (what, err)
        assert "Traceback" not in err and err.count("\n") == 1, (what, err)
    assert not (tmp_path / "mask.png").exists()


def test_bad_model_or_output_exit_2(tmp_path: Path, tiny_model_path: Path, capsys) -> None:
    np.save(tmp_path / "survey.npy", np.ones((2, 32, 32), np.float32))
    (tmp_path / "broken.pt").write_bytes(b"garbage")
    cases = [
        ("no-such-model", tmp_path / "mask.png", "unknown model"),
        (tmp_path / "broken.pt", tmp_path / "mask.png", "not a readable model file"),
        (tiny_model_path, tmp_path / "mask.jpg", "mask must be"),
        (tiny_model_path, tmp_path / "no" / "mask.png", "no such directory"),
    ]
    for model, out, message in cases:
        assert predict(tmp_path / "survey.npy", model, out) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
