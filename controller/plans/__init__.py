"""Bluesky plans: one run per stage, and `make_sample` chaining them."""

from controller.plans.context import SampleContext
from controller.plans.make_sample import lab_suspenders, make_sample
from controller.plans.stages import measure_properties, mill, sinter, sped_scan, survey_image

__all__ = [
    "SampleContext",
    "lab_suspenders",
    "make_sample",
    "measure_properties",
    "mill",
    "sinter",
    "sped_scan",
    "survey_image",
]
