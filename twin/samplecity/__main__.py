"""``python -m twin.samplecity OUT_DIR [--seed N] [--scale F] [--as-of TIME]``: write the sample city and
print counts."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pyogrio

from twin.samplecity.clock import REFERENCE_TIME, parse_as_of
from twin.samplecity.generator import DEFAULT_SEED, generate_city


def _clock(text: str) -> datetime:
    try:
        return parse_as_of(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m twin.samplecity", description="Generate the Quy Nhơn sample city as GeoPackages."
    )
    parser.add_argument("out_dir", type=Path, help="folder for the .gpkg files and layers.json")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default %(default)s)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplier for feature counts (default 1)")
    parser.add_argument("--inputs", type=Path, default=None, help="folder of input files (default data/samples)")
    parser.add_argument(
        "--as-of",
        type=_clock,
        default=REFERENCE_TIME,
        metavar="TIME",
        help="the city's clock in Quy Nhơn time (UTC+7), such as 2026-11-01T08:30: readings, vessel positions "
        "and citizen reports lead up to it (default: the fixed %(default)s, so the files are reproducible; "
        "`twin samples` uses the current minute)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("pyogrio").setLevel(logging.WARNING)
    if args.scale <= 0:
        parser.error("--scale must be positive")
    started = time.perf_counter()
    layers = generate_city(args.out_dir, seed=args.seed, scale=args.scale, inputs_dir=args.inputs, reference=args.as_of)
    elapsed = time.perf_counter() - started
    for layer in layers:
        count = pyogrio.read_info(layer.path)["features"]
        print(f"{layer.definition['id']:<16} {count:>8,d}  {layer.path}")
    print(f"{len(layers)} layers in {elapsed:.1f} s (seed {args.seed}, scale {args.scale:g}, as of {args.as_of})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
