"""Bluesky plans: one run per stage, `make_sample` chaining them, `make_batch` pipelining several samples."""

from controller.plans.context import SampleContext
from controller.plans.make_batch import make_batch
from controller.plans.make_sample import lab_suspenders, make_sample
from controller.plans.stages import measure_properties, mill, sinter, sped_scan, survey_image

__all__ = [
    "SampleContext",
    "lab_suspenders",
    "make_batch",
    "make_sample",
    "measure_properties",
    "mill",
    "sinter",
    "sped_scan",
    "survey_image",
]
