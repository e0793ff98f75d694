"""Layer definitions: what a layer is, independent of where it is stored.

A layer definition is data (it is stored as JSON in the catalog and edited over
the admin API), so it is a pydantic model that validates itself: every id and
field name is a safe SQL identifier by construction, which is what lets the
backends build tables from it without ever quoting user text into SQL.
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from layers.access import LayerAccess

IDENTIFIER = r"^[a-z][a-z0-9_]{0,40}$"
Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER)]
#: A field keeps the spelling of the column it came from (``NAME``, ``POP_EST``) when that is a plain
#: identifier. The store quotes it in SQL; the names of one layer differ in more than case (SQLite's
#: columns are case-insensitive), so a name asked for in another case still finds one field.
FIELD_NAME = r"^[A-Za-z][A-Za-z0-9_]{0,62}$"
FieldName = Annotated[str, StringConstraints(pattern=FIELD_NAME)]
#: Fields of one layer: PostgreSQL allows 1,600 columns in a table, SQLite 2,000, the store adds a few.
MAX_FIELDS = 1_000

#: Column names the store owns (in any case); a layer's own fields may not use them.
RESERVED_NAMES = frozenset({"fid", "geom", "id", "geometry"})


class LayerKind(StrEnum):
    """What a layer represents in the operations centre; drives defaults in clients."""

    ADMIN_AREA = "admin_area"
    ADDRESS_POINT = "address_point"
    PARCEL = "parcel"
    INFRASTRUCTURE = "infrastructure"
    CAMERA = "camera"
    SENSOR = "sensor"
    VESSEL = "vessel"
    INCIDENT = "incident"
    GENERIC = "generic"


class GeometryType(StrEnum):
    POINT = "Point"
    LINESTRING = "LineString"
    POLYGON = "Polygon"
    MULTIPOINT = "MultiPoint"
    MULTILINESTRING = "MultiLineString"
    MULTIPOLYGON = "MultiPolygon"
    GEOMETRY = "Geometry"

    @property
    def single(self) -> GeometryType:
        """The single-part type a multi-part layer accepts and promotes."""
        return {
            GeometryType.MULTIPOINT: GeometryType.POINT,
            GeometryType.MULTILINESTRING: GeometryType.LINESTRING,
            GeometryType.MULTIPOLYGON: GeometryType.POLYGON,
        }.get(self, self)


class FieldType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"


class FieldDefinition(BaseModel):
    """One typed attribute of a layer."""

    model_config = ConfigDict(extra="forbid")

    name: FieldName
    type: FieldType
    title: str | None = Field(default=None, description="Label shown to people (Vietnamese allowed).")
    description: str | None = None
    required: bool = False
    choices: list[str] | None = Field(default=None, description="Allowed values of a categorical string field.")
    sensitive: bool = Field(
        default=False,
        description="Readable only by the roles the layer's access.sensitive names (and admin): absent, not "
        "blanked, from every answer to anyone else.",
    )

    @model_validator(mode="after")
    def _check(self) -> FieldDefinition:
        if self.name.lower() in RESERVED_NAMES or self.name.startswith("_"):
            raise ValueError(f"field name '{self.name}' is reserved by the store")
        if self.choices is not None and self.type is not FieldType.STRING:
            raise ValueError(f"field '{self.name}': choices are only allowed on string fields")
        return self


class StyleHints(BaseModel):
    """Default drawing hints; clients and the style endpoint turn them into real styles."""

    model_config = ConfigDict(extra="forbid")

    color: str = Field(default="#3182bd", pattern=r"^#[0-9a-fA-F]{6}$")
    fill_color: str | None = Field(default=None, pattern=r"^#[0-9a-fA-F]{6}$")
    opacity: float = Field(default=0.8, ge=0, le=1)
    line_width: float = Field(default=1.5, ge=0, le=50)
    radius: float = Field(default=4, ge=0, le=100)
    min_zoom: int = Field(default=0, ge=0, le=24)
    max_zoom: int = Field(default=22, ge=0, le=24)
    label_field: str | None = None
    extrude_field: str | None = None
    icon: str | None = None


class LayerDefinition(BaseModel):
    """Everything the store and the APIs need to know about one layer."""

    model_config = ConfigDict(extra="forbid")

    id: Identifier
    title: str = Field(min_length=1, max_length=200)
    description: str | None = None
    kind: LayerKind = LayerKind.GENERIC
    geometry_type: GeometryType
    fields: list[FieldDefinition] = Field(default_factory=list)
    time_field: str | None = Field(default=None, description="The datetime/date field that places a feature in time.")
    end_time_field: str | None = Field(default=None, description="End of the feature's time interval, if it has one.")
    source_crs: str = Field(default="EPSG:4326", description="CRS of the data as delivered.")
    style: StyleHints = Field(default_factory=StyleHints)
    access: LayerAccess = Field(
        default_factory=LayerAccess, description="Who may read, write and administer it; not public unless it says."
    )

    @model_validator(mode="after")
    def _check(self) -> LayerDefinition:
        if len(self.fields) > MAX_FIELDS:
            raise ValueError(f"{len(self.fields):,} fields; a layer may have at most {MAX_FIELDS:,}")
        spellings: dict[str, list[str]] = {}
        for each in self.fields:
            spellings.setdefault(each.name.lower(), []).append(each.name)
        duplicates = sorted("/".join(dict.fromkeys(names)) for names in spellings.values() if len(names) > 1)
        if duplicates:
            raise ValueError(f"duplicate field names (case does not count): {', '.join(sorted(duplicates))}")
        temporal = {FieldType.DATE, FieldType.DATETIME}
        for attr in ("time_field", "end_time_field"):
            name = getattr(self, attr)
            if name is None:
                continue
            temporal_field = self.field(name)
            if temporal_field is None or temporal_field.type not in temporal:
                raise ValueError(f"{attr} '{name}' must name a date or datetime field")
            setattr(self, attr, temporal_field.name)  # as the field spells it: the store reads the column by it
        if self.end_time_field and not self.time_field:
            raise ValueError("end_time_field needs a time_field")
        for attr in ("label_field", "extrude_field"):
            name = getattr(self.style, attr)
            if name is None:
                continue
            styled = self.field(name)
            if styled is None:
                raise ValueError(f"style.{attr} '{name}' is not a field of the layer")
            setattr(self.style, attr, styled.name)
        return self

    def field(self, name: str) -> FieldDefinition | None:
        """The field named ``name``, or else the one whose name differs only in case (there is at most one)."""
        exact = next((f for f in self.fields if f.name == name), None)
        if exact is not None:
            return exact
        folded = name.lower()
        return next((f for f in self.fields if f.name.lower() == folded), None)


class LayerPatch(BaseModel):
    """A change to an existing layer: metadata and added, renamed or removed fields.

    The geometry type and id cannot change: data already stored depends on them.
    """

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = None
    kind: LayerKind | None = None
    time_field: str | None = None
    end_time_field: str | None = None
    style: StyleHints | None = None
    access: LayerAccess | None = None
    add_fields: list[FieldDefinition] = Field(default_factory=list)
    rename_fields: dict[FieldName, FieldName] = Field(default_factory=dict)
    drop_fields: list[FieldName] = Field(default_factory=list)

    def apply(self, layer: LayerDefinition) -> LayerDefinition:
        """Return the definition after this change, validated as a whole."""
        data: dict[str, Any] = layer.model_dump()
        for key in ("title", "description", "kind", "time_field", "end_time_field", "style", "access"):
            if key in self.model_fields_set:
                value = getattr(self, key)
                data[key] = value.model_dump() if isinstance(value, BaseModel) else value
        fields = {f["name"]: f for f in data["fields"]}
        for name in self.drop_fields:
            if name not in fields:
                raise ValueError(f"cannot drop unknown field '{name}'")
            del fields[name]
        for old, new in self.rename_fields.items():
            if old not in fields:
                raise ValueError(f"cannot rename unknown field '{old}'")
            if new in fields:
                raise ValueError(f"cannot rename '{old}' to '{new}': the name is taken")
            fields = {(new if k == old else k): ({**v, "name": new} if k == old else v) for k, v in fields.items()}
        for added in self.add_fields:
            if added.name in fields:
                raise ValueError(f"cannot add field '{added.name}': it exists")
            if added.required:
                raise ValueError(f"added field '{added.name}' cannot be required: existing features lack it")
            fields[added.name] = added.model_dump()
        data["fields"] = list(fields.values())
        return LayerDefinition.model_validate(data)


def identifier_from(text: str, fallback: str = "field") -> str:
    """Turn a column or file name (possibly Vietnamese) into a safe identifier.

    "Tên đường" becomes "ten_duong": diacritics are stripped (đ → d) so the name
    stays readable, and the original text is kept by callers as the field title.
    """
    text = text.replace("đ", "d").replace("Đ", "D")
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")
    if not slug or not slug[0].isalpha():
        slug = f"{fallback}_{slug}".strip("_")
    slug = slug[:41]
    if slug in RESERVED_NAMES:
        slug = f"source_{slug}"
    return slug


def field_name_from(text: str) -> str:
    """The field name for a source column: its own spelling when that is a plain identifier
    (``NAME``, ``POP_EST``, ``so_nha``), else a readable identifier made from it (``identifier_from``)."""
    if re.fullmatch(FIELD_NAME, text) and text.lower() not in RESERVED_NAMES:
        return text
    return identifier_from(text)
