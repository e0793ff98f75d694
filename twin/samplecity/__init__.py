"""Deterministic sample city of Quy Nhơn (Bình Định, Vietnam) for demos, tests and benchmarks.

``generate_city(out_dir, seed, scale, reference=…)`` writes one GeoPackage per
layer (wards, address points, parcels, roads, street lights, drainage, cameras,
sensors, vessels, vessel tracks, citizen incidents) and a ``layers.json`` with
their definitions. The same seed, scale and reference time (see ``clock``)
always give the same data.
"""

from twin.samplecity.clock import REFERENCE_TIME
from twin.samplecity.definitions import LAYER_ORDER, build_definitions
from twin.samplecity.generator import BASE_COUNTS, DEFAULT_SEED, SampleLayer, generate_city, scaled_count
from twin.samplecity.inputs import DEFAULT_INPUTS_DIR, SampleInputs, load_inputs

__all__ = [
    "BASE_COUNTS",
    "DEFAULT_INPUTS_DIR",
    "DEFAULT_SEED",
    "LAYER_ORDER",
    "REFERENCE_TIME",
    "SampleInputs",
    "SampleLayer",
    "build_definitions",
    "generate_city",
    "load_inputs",
    "scaled_count",
]
