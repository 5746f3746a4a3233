"""Class tables: value, name, colour and the CORINE / BigEarthNet-19 codes of each class.

Two tables ship: ``ben19`` (the 19 BigEarthNet classes of Sumbul et al. 2021, with their CORINE
Land Cover level-3 codes and CLC colours; the patch-level models) and ``water`` (water / other
land, the only pixel-labelled S1+S2 reference available here: Sen1Floods11; the pixel models).
A class table is also a JSON file (``{"name", "classes": [{"value", "name", "color", "ben19",
"corine"}]}``): a model carries its table, and ``--classes`` given to ``classify`` must match it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from candela_sdk.errors import InputError

NODATA = 255


@dataclass(frozen=True)
class LandClass:
    value: int
    name: str
    color: str  # "#rrggbb"
    ben19: tuple[int, ...] = ()  # BigEarthNet-19 class numbers (1-19) covered
    corine: tuple[str, ...] = ()  # CORINE Land Cover codes covered (level 1-3)

    def rgba(self) -> tuple[int, int, int, int]:
        c = self.color.lstrip("#")
        return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16), 255


@dataclass(frozen=True)
class ClassTable:
    name: str
    classes: tuple[LandClass, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def values(self) -> list[int]:
        return [c.value for c in self.classes]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "classes": [
                {**asdict(c), "ben19": list(c.ben19), "corine": list(c.corine)}
                for c in self.classes
            ],
        }

    def colormap(self) -> dict[int, tuple[int, int, int, int]]:
        cmap = {c.value: c.rgba() for c in self.classes}
        cmap[NODATA] = (0, 0, 0, 0)
        return cmap

    def stac_classes(self) -> list[dict[str, Any]]:
        """The ``classification:classes`` objects of the STAC classification extension."""
        return [
            {
                "value": c.value,
                "name": c.name.lower().replace(" ", "-").replace(",", ""),
                "description": c.name
                + (f" (BigEarthNet-19 {', '.join(map(str, c.ben19))})" if c.ben19 else "")
                + (f" (CORINE {', '.join(c.corine)})" if c.corine else ""),
                "color_hint": c.color.lstrip("#").upper(),
            }
            for c in self.classes
        ]


# BigEarthNet-19 (name, CORINE codes, CLC colour of the first code)
_BEN19 = [
    ("Urban fabric", ("111", "112"), "#e6004d"),
    ("Industrial or commercial units", ("121",), "#cc4df2"),
    ("Arable land", ("211", "212", "213"), "#ffffa8"),
    ("Permanent crops", ("221", "222", "223", "241"), "#e68000"),
    ("Pastures", ("231",), "#e6e64d"),
    ("Complex cultivation patterns", ("242",), "#ffe64d"),
    (
        "Land principally occupied by agriculture, with significant areas of natural vegetation",
        ("243",),
        "#e6cc4d",
    ),
    ("Agro-forestry areas", ("244",), "#f2cca6"),
    ("Broad-leaved forest", ("311",), "#80ff00"),
    ("Coniferous forest", ("312",), "#00a600"),
    ("Mixed forest", ("313",), "#4dff00"),
    ("Natural grassland and sparsely vegetated areas", ("321", "333"), "#ccf24d"),
    ("Moors, heathland and sclerophyllous vegetation", ("322", "323"), "#a6ff80"),
    ("Transitional woodland, shrub", ("324",), "#a6f200"),
    ("Beaches, dunes, sands", ("331",), "#e6e6e6"),
    ("Inland wetlands", ("411", "412"), "#a6a6ff"),
    ("Coastal wetlands", ("421", "422"), "#ccccff"),
    ("Inland waters", ("511", "512"), "#00ccf2"),
    ("Marine waters", ("521", "522", "523"), "#e6f2ff"),
]
BEN19 = ClassTable(
    "ben19",
    tuple(
        LandClass(i, name, color, (i + 1,), codes) for i, (name, codes, color) in enumerate(_BEN19)
    ),
)
BEN19_NAMES = [c.name for c in BEN19.classes]

WATER = ClassTable(
    "water",
    (
        LandClass(0, "Land", "#c8b482", tuple(range(1, 18)), ("1", "2", "3", "4")),
        LandClass(1, "Water", "#1f64c8", (18, 19), ("5",)),
    ),
)
TABLES = {t.name: t for t in (BEN19, WATER)}

# BigEarthNet v1 (43 CORINE labels) -> BigEarthNet-19 (Sumbul et al. 2021); None: dropped
BEN43_TO_19: dict[str, str | None] = {
    "Continuous urban fabric": "Urban fabric",
    "Discontinuous urban fabric": "Urban fabric",
    "Industrial or commercial units": "Industrial or commercial units",
    "Road and rail networks and associated land": None,
    "Port areas": None,
    "Airports": None,
    "Mineral extraction sites": None,
    "Dump sites": None,
    "Construction sites": None,
    "Green urban areas": None,
    "Sport and leisure facilities": None,
    "Non-irrigated arable land": "Arable land",
    "Permanently irrigated land": "Arable land",
    "Rice fields": "Arable land",
    "Vineyards": "Permanent crops",
    "Fruit trees and berry plantations": "Permanent crops",
    "Olive groves": "Permanent crops",
    "Annual crops associated with permanent crops": "Permanent crops",
    "Pastures": "Pastures",
    "Complex cultivation patterns": "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation": (
        "Land principally occupied by agriculture, with significant areas of natural vegetation"
    ),
    "Agro-forestry areas": "Agro-forestry areas",
    "Broad-leaved forest": "Broad-leaved forest",
    "Coniferous forest": "Coniferous forest",
    "Mixed forest": "Mixed forest",
    "Natural grassland": "Natural grassland and sparsely vegetated areas",
    "Sparsely vegetated areas": "Natural grassland and sparsely vegetated areas",
    "Moors and heathland": "Moors, heathland and sclerophyllous vegetation",
    "Sclerophyllous vegetation": "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland/shrub": "Transitional woodland, shrub",
    "Beaches, dunes, sands": "Beaches, dunes, sands",
    "Bare rock": None,
    "Burnt areas": None,
    "Inland marshes": "Inland wetlands",
    "Peatbogs": "Inland wetlands",
    "Salt marshes": "Coastal wetlands",
    "Salines": "Coastal wetlands",
    "Intertidal flats": None,
    "Water courses": "Inland waters",
    "Water bodies": "Inland waters",
    "Coastal lagoons": "Marine waters",
    "Estuaries": "Marine waters",
    "Sea and ocean": "Marine waters",
}


def ben19_labels(labels: list[str]) -> list[str]:
    """BigEarthNet labels (v1 43-class or v2 19-class names) as BigEarthNet-19 names."""
    out: set[str] = set()
    for name in labels:
        if name in BEN19_NAMES:
            out.add(name)
        elif name in BEN43_TO_19:
            mapped = BEN43_TO_19[name]
            if mapped:
                out.add(mapped)
        else:
            raise InputError(f"unknown BigEarthNet label {name!r}")
    return sorted(out, key=BEN19_NAMES.index)


def from_json(data: dict[str, Any] | str) -> ClassTable:
    """A class table from its JSON form (or a shipped table's name); InputError if malformed."""
    if isinstance(data, str):
        if data in TABLES:
            return TABLES[data]
        text = data
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise InputError(
                f"class table {text[:60]!r} is neither {', '.join(TABLES)} nor JSON"
            ) from None
    try:
        assert isinstance(data, dict)
        classes = tuple(
            LandClass(
                int(c["value"]),
                str(c["name"]),
                str(c["color"]),
                tuple(int(x) for x in c.get("ben19") or ()),
                tuple(str(x) for x in c.get("corine") or ()),
            )
            for c in data["classes"]
        )
        table = ClassTable(str(data.get("name", "custom")), classes)
    except (AssertionError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"malformed class table: {exc!r}") from None
    values = table.values
    if values != list(range(len(values))):
        raise InputError(f"class table values must be 0..{len(values) - 1} in order, got {values}")
    return table


def check_matches(given: ClassTable, model: ClassTable, model_name: str) -> None:
    """InputError unless ``given`` has the same values and names as the model's table."""
    a = [(c.value, c.name) for c in given.classes]
    b = [(c.value, c.name) for c in model.classes]
    if a != b:
        raise InputError(
            f"class table {given.name!r} does not match model {model_name!r}: the model "
            f"predicts {len(b)} classes ({', '.join(n for _, n in b)}), the table has "
            f"{len(a)} ({', '.join(n for _, n in a)})"
        )
