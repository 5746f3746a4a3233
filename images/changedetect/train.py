"""Pre-train the encoder on sample OSCD pairs and register it (the ``pretrained`` mode).

    .venv/bin/python images/changedetect/train.py --cities nantes,paris,montpellier \
        --data ../shared/data/oscd --name encoder-oscd --output model.keras [--register]

Trains the cross-date translators of :mod:`candela_changedetect.models.encoder` on each city in
turn (weights carried over), saves ``model.keras`` and, with ``--register``, puts it in the
model registry (``CANDELA_MODEL_REGISTRY``). Cities used here must not be reported as test
results (the README's evaluation reports bordeaux, rennes and saclay_e).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import rasterio

from candela_changedetect.blocks import RasterPair
from candela_changedetect.models.encoder import EncoderModel, EncoderOptions
from candela_changedetect.oscd import build_stack

HERE = Path(__file__).resolve().parent
BANDS = ["B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cities", default="nantes,paris,montpellier")
    ap.add_argument("--data", default=str(HERE.parents[1] / ".." / "shared" / "data" / "oscd"))
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--name", default="encoder-oscd")
    ap.add_argument("--output", default="model.keras")
    ap.add_argument("--register", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    cities = args.cities.split(",")
    weights: str | None = None
    with tempfile.TemporaryDirectory() as tmp:
        for city in cities:
            d = Path(args.data) / city
            b = build_stack(d, 1, Path(tmp) / f"{city}_1.tif")
            a = build_stack(d, 2, Path(tmp) / f"{city}_2.tif")
            opts = EncoderOptions(
                epochs=args.epochs,
                mode="pretrained" if weights else "pair",
                weights=weights,
            )
            model = EncoderModel(opts)
            with rasterio.open(b) as bds, rasterio.open(a) as ads:
                if bds.shape != ads.shape:
                    continue  # OSCD saclay_e: dates on different grids
                model.fit(RasterPair(bds, ads, band_names=BANDS))
            weights = str(Path(tmp) / f"after_{city}.keras")
            model.save(weights)
            print(city, "loss", model.train_loss)
        Path(args.output).write_bytes(Path(weights or "").read_bytes())
    training = {
        "cities": cities,
        "data": "OSCD (Daudt et al. 2018), 10 bands resampled onto B02's grid",
        "epochs_per_city": args.epochs,
        "objective": "cross-date translation, Huber loss, no labels",
        "script": "images/changedetect/train.py",
    }
    if args.register:
        from candela_changedetect import registry

        rec = registry.register(args.name, args.output, bands=BANDS, training=training)
        print(json.dumps(rec, indent=2))


if __name__ == "__main__":
    main()
