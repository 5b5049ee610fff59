"""`grainloop seg train | predict | analyze`: argument parsing only; the work lives in its own module."""

from __future__ import annotations

import argparse


def cmd_train(args: argparse.Namespace) -> int:
    from agents.segmentation.training import run_train

    return run_train(args)


def cmd_predict(args: argparse.Namespace) -> int:
    from agents.segmentation.predict_command import run_predict

    return run_predict(args)


def cmd_analyze(args: argparse.Namespace) -> int:
    from agents.segmentation.analyze_command import run_analyze

    return run_analyze(args)


def add_parser(sub: argparse._SubParsersAction) -> None:
    seg = sub.add_parser("seg", help="segment STEM images").add_subparsers(dest="action", required=True)

    train = seg.add_parser("train", help="train (or fine-tune) a segmentation model")
    train.add_argument("--images", help="directory of images (default: simulator images)")
    train.add_argument("--masks", help="directory of masks matching --images")
    train.add_argument("--val-images", help="directory of validation images (default: a fifth of --images)")
    train.add_argument("--val-masks", help="directory of masks matching --val-images")
    train.add_argument("--init", help="model name or file to fine-tune from")
    train.add_argument("--out", required=True, help="where to write the model file")
    train.add_argument("--epochs", type=int, help="passes over the data (default: per data source)")
    train.add_argument("--steps-per-epoch", type=int, help="batches per epoch (default: per data source)")
    train.add_argument("--sim-frames", type=int, help="simulator frames to train on (default 368)")
    train.add_argument("--threads", type=int, help="torch threads (default 1: faster than 2 here)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--json", action="store_true")
    train.set_defaults(func=cmd_train)

    predict = seg.add_parser("predict", help="write the class-id mask of an image")
    predict.add_argument("image")
    predict.add_argument("--model", default="sim-122", help="model name (sim-122, nasa-superalloy, classical) or file")
    predict.add_argument("--out", required=True, help="mask PNG/TIFF: uint8 class ids, one per pixel")
    predict.set_defaults(func=cmd_predict)

    analyze = seg.add_parser("analyze", help="segment an image and print its microstructure statistics")
    analyze.add_argument("image")
    analyze.add_argument("--model", default="sim-122", help="model name (sim-122, nasa-superalloy, classical) or file")
    analyze.add_argument("--pixel-nm", type=float, help="pixel size (default: from the file, else 2 nm)")
    analyze.add_argument("--overlay", help="write an overlay PNG here")
    analyze.add_argument("--json", action="store_true")
    analyze.set_defaults(func=cmd_analyze)
