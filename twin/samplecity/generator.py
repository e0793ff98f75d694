"""Entry point of the sample city: build every layer and write it to disk.

Each layer draws from its own random stream derived from the seed, so
changing how one layer is generated does not reshuffle all the others, and
the street network (the skeleton everything hangs on) is identical at every
scale.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from twin.samplecity.clock import REFERENCE_TIME
from twin.samplecity.definitions import LAYER_ORDER, build_definitions
from twin.samplecity.geography import derive_geography
from twin.samplecity.inputs import SampleInputs, load_inputs
from twin.samplecity.layers_land import address_layer, parcels_layer, wards_layer
from twin.samplecity.layers_marine import vessel_layers
from twin.samplecity.layers_monitoring import incidents_layer, sensors_layer
from twin.samplecity.layers_streets import (
    cameras_layer,
    drainage_layer,
    roads_layer,
    street_lights_layer,
)
from twin.samplecity.output import LayerData, write_layer, write_layers_json
from twin.samplecity.parcels import build_parcels
from twin.samplecity.streets import build_network
from twin.samplecity.wards import build_wards

logger = logging.getLogger(__name__)

DEFAULT_SEED = 2025

# Feature counts at scale 1. Parcels and roads are not listed: at scale 1 they
# are the whole inventory the street grid yields (about 59,000 and 330).
BASE_COUNTS = {
    "address_points": 60_000,
    "street_lights": 5_000,
    "drainage": 600,
    "cameras": 300,
    "sensors": 200,
    "vessels": 500,
    "incidents": 5_000,
}

_STREAMS = {
    "streets": 1,
    "parcels": 2,
    "parcel_attributes": 3,
    "address_points": 4,
    "street_lights": 5,
    "drainage": 6,
    "cameras": 7,
    "sensors": 8,
    "vessels": 9,
    "incidents": 10,
}


@dataclass(frozen=True)
class SampleLayer:
    definition: dict[str, Any]
    path: Path


def scaled_count(count: int, scale: float) -> int:
    """round(count × scale), but never an empty layer."""
    return max(1, round(count * scale))


def _rng(seed: int, stream: str) -> np.random.Generator:
    return np.random.default_rng([seed, _STREAMS[stream]])


def generate_city(
    out_dir: Path,
    seed: int = DEFAULT_SEED,
    scale: float = 1.0,
    inputs_dir: Path | None = None,
    reference: datetime = REFERENCE_TIME,
) -> list[SampleLayer]:
    """Write one GeoPackage per layer plus ``layers.json`` into ``out_dir``.

    Readings, vessel positions and reports lead up to ``reference`` (see
    ``clock``). The same seed, scale and reference give the same bytes, so the
    sample can be regenerated instead of stored.
    """
    if scale <= 0:
        raise ValueError("scale must be positive")
    if scale > 1:
        logger.info("parcels and roads are the street grid's whole inventory and do not grow above scale 1")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = load_inputs(inputs_dir)
    definitions = build_definitions(inputs)
    data = _build_layers(inputs, seed, scale, int(reference.timestamp()))
    layers = []
    for layer_id in LAYER_ORDER:
        path = write_layer(definitions[layer_id], data[layer_id], out_dir)
        layers.append(SampleLayer(definition=definitions[layer_id], path=path))
    write_layers_json([definitions[layer_id] for layer_id in LAYER_ORDER], out_dir)
    logger.info(
        "sample city (seed %d, scale %g) written to %s in %.1f s",
        seed,
        scale,
        out_dir,
        time.perf_counter() - started,
    )
    return layers


def _build_layers(inputs: SampleInputs, seed: int, scale: float, reference_epoch: int) -> dict[str, LayerData]:
    geo = inputs.geography
    city = derive_geography(geo)
    wards = build_wards(inputs.wards, geo.land)
    network = build_network(city, inputs.streets, inputs.road_classes, _rng(seed, "streets"))
    parcels = build_parcels(network, geo.districts, inputs.land_uses, city, _rng(seed, "parcels"))

    def count(layer_id: str) -> int:
        return scaled_count(BASE_COUNTS[layer_id], scale)

    addresses, anchors = address_layer(
        network,
        city,
        wards,
        BASE_COUNTS["address_points"],
        count("address_points"),
        _rng(seed, "address_points"),
    )
    vessels, tracks = vessel_layers(inputs.vessels, city, count("vessels"), _rng(seed, "vessels"), reference_epoch)
    layers = [
        wards_layer(wards),
        addresses,
        parcels_layer(
            parcels, inputs.land_uses, wards, scaled_count(len(parcels), scale), _rng(seed, "parcel_attributes")
        ),
        roads_layer(network, scaled_count(len(network.streets), scale)),
        street_lights_layer(network, city, inputs.road_classes, count("street_lights"), _rng(seed, "street_lights")),
        drainage_layer(network, city, inputs.road_classes, count("drainage"), _rng(seed, "drainage")),
        cameras_layer(network, city, wards, count("cameras"), _rng(seed, "cameras")),
        sensors_layer(
            inputs.sensor_kinds, anchors, city, wards, count("sensors"), _rng(seed, "sensors"), reference_epoch
        ),
        vessels,
        tracks,
        incidents_layer(
            inputs.incident_categories,
            anchors,
            city,
            wards,
            count("incidents"),
            _rng(seed, "incidents"),
            reference_epoch,
        ),
    ]
    return {layer.layer_id: layer for layer in layers}
