"""Who may see and change what: roles, each layer's permissions, and the scope of one reader.

A ``Scope`` is a domain value: the principal's name and roles and, for a principal bound to
administrative areas, an ``AreaMask`` (the union of the areas' polygons). The store applies it
where it builds its WHERE clauses (``layers.store.statements``), so every path — items, counts,
tiles, exports, history — reads through the same rule:

- a layer is readable by a scope whose roles its ``LayerAccess`` grants (``public``: by anyone);
- a layer that is not public is narrowed to the features whose geometry meets the mask
  (a public layer is read in full: the public sees it all anyway);
- every write is narrowed to the mask, public layer or not;
- a ``sensitive`` field is left out of the layer's definition as this scope sees it unless one of
  its roles is granted it, so it is absent from every answer, filter, sort key and error.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import shapely
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from shapely.geometry.base import BaseGeometry

from layers.errors import ForbiddenError, NotFoundError, UnauthorizedError

if TYPE_CHECKING:
    from layers.model import LayerDefinition

ROLE_PATTERN = r"^[a-z][a-z0-9_]{0,40}$"
RoleName = Annotated[str, StringConstraints(pattern=ROLE_PATTERN)]


class Role(StrEnum):
    """The roles Twin knows; a deployment may grant layers to roles of its own as well."""

    ADMIN = "admin"  # everything, on every layer, and the keys, audit and backups
    PROVINCE = "province"  # leaders and departments: the whole province
    WARD_OFFICER = "ward_officer"  # the cases of one or more administrative areas
    GIS_CLIENT = "gis_client"  # external tools (QGIS, ArcGIS, GDAL, notebooks), read-only
    PUBLIC = "public"  # no credential: the published layers only


#: Who may read a layer when its definition does not say: signed-in roles, never the public.
DEFAULT_READERS = (Role.PROVINCE.value, Role.WARD_OFFICER.value, Role.GIS_CLIENT.value)


class Action(StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


class LayerAccess(BaseModel):
    """Which roles may read, write and administer a layer, and whether anyone may read it.

    ``admin`` may do everything on every layer whatever this says. A role that may write or
    administer a layer may read it. ``sensitive`` names the roles that read the layer's
    sensitive fields."""

    model_config = ConfigDict(extra="forbid")

    public: bool = Field(default=False, description="Readable by anyone, signed in or not (in full, every area).")
    read: list[RoleName] = Field(default_factory=lambda: list(DEFAULT_READERS), description="Roles that read it.")
    write: list[RoleName] = Field(default_factory=list, description="Roles that add, change and delete features.")
    admin: list[RoleName] = Field(default_factory=list, description="Roles that change the layer and import into it.")
    sensitive: list[RoleName] = Field(default_factory=list, description="Roles that read its sensitive fields.")


@dataclass(frozen=True, slots=True, eq=False)
class AreaMask:
    """Where a principal may act: the union of its areas' polygons, in EPSG:4326.

    ``wkb`` is what the database receives as a bound parameter; ``key`` names the mask in cache keys."""

    geometry: BaseGeometry
    wkb: bytes
    bounds: tuple[float, float, float, float]
    key: str

    @classmethod
    def of(cls, geometry: BaseGeometry) -> AreaMask:
        if geometry.is_empty:
            raise ValueError("an area mask needs a geometry that is not empty")
        valid = shapely.make_valid(geometry)
        wkb = shapely.to_wkb(valid, output_dimension=2)
        shapely.prepare(valid)
        return cls(valid, wkb, tuple(valid.bounds), hashlib.sha256(wkb).hexdigest()[:16])  # type: ignore[arg-type]

    def meets(self, geometry: BaseGeometry) -> bool:
        """The rule the database applies, in Python: for checking geometries about to be written."""
        return bool(shapely.intersects(self.geometry, geometry))


@dataclass(frozen=True, slots=True)
class Scope:
    """One principal's view of the store: its roles and, if bound to areas, its mask.

    ``key`` is stable for one kind of view (the roles and the mask), so caches that key on it
    (tiles) keep one entry per kind of reader, not per person."""

    principal: str
    roles: frozenset[str]
    areas: tuple[str, ...] = ()
    mask: AreaMask | None = None
    #: Where the request came from, for the audit trail (no part of ``key``).
    request_id: str | None = field(default=None, compare=False)
    client: str | None = field(default=None, compare=False)
    key: str = field(init=False)

    def __post_init__(self) -> None:
        roles = ",".join(sorted(self.roles))
        object.__setattr__(self, "key", f"{roles}@{self.mask.key if self.mask else '*'}")

    def at(self, request_id: str | None, client: str | None) -> Scope:
        """This scope, for a request with this id from this address."""
        return replace(self, request_id=request_id, client=client)

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles

    @property
    def signed_in(self) -> bool:
        return self.roles != {Role.PUBLIC}

    def may(self, layer: LayerDefinition, action: Action) -> bool:
        if self.is_admin:
            return True
        access = layer.access
        granted = set(access.admin)
        if action is not Action.ADMIN:
            granted.update(access.write)
        if action is Action.READ:
            if access.public:
                return True
            granted.update(access.read)
        return not self.roles.isdisjoint(granted)

    def require(self, layer: LayerDefinition, action: Action) -> None:
        """Refuse an action this scope may not take: 401 to the public (a sign-in may help), 403 otherwise."""
        if self.may(layer, action):
            return
        verb = {Action.READ: "read", Action.WRITE: "change features of", Action.ADMIN: "administer"}[action]
        if not self.signed_in:
            raise UnauthorizedError(f"sign in to {verb} layer '{layer.id}': it is not public", layer=layer.id)
        raise ForbiddenError(f"{self.principal} may not {verb} layer '{layer.id}'", layer=layer.id)

    def readable(self, layer: LayerDefinition) -> LayerDefinition:
        """The layer as this scope sees it (sensitive fields it may not read left out), or the refusal."""
        self.require(layer, Action.READ)
        return self.view(layer)

    def view(self, layer: LayerDefinition) -> LayerDefinition:
        hidden = self.hidden_fields(layer)
        if not hidden:
            return layer
        style = layer.style.model_copy(
            update={
                "label_field": None if layer.style.label_field in hidden else layer.style.label_field,
                "extrude_field": None if layer.style.extrude_field in hidden else layer.style.extrude_field,
            }
        )
        fields = [f for f in layer.fields if f.name not in hidden]
        return layer.model_copy(update={"fields": fields, "style": style})

    def hidden_fields(self, layer: LayerDefinition) -> frozenset[str]:
        sensitive = frozenset(f.name for f in layer.fields if f.sensitive)
        if not sensitive or self.is_admin or not self.roles.isdisjoint(layer.access.sensitive):
            return frozenset()
        return sensitive

    def mask_for(self, layer: LayerDefinition, action: Action) -> AreaMask | None:
        """The mask this action on ``layer`` is narrowed to; None: no narrowing."""
        if self.mask is None or (action is Action.READ and layer.access.public):
            return None
        return self.mask

    def check_written(self, layer: LayerDefinition, geometries: list[BaseGeometry]) -> None:
        """Refuse geometries outside the mask before anything is written (403, naming the first)."""
        mask = self.mask_for(layer, Action.WRITE)
        if mask is None:
            return
        for number, geometry in enumerate(geometries, start=1):
            if not mask.meets(geometry):
                where = f"feature {number}'s geometry" if len(geometries) > 1 else "the geometry"
                raise ForbiddenError(
                    f"{where} lies outside the areas of {self.principal} ({', '.join(self.areas)})", layer=layer.id
                )


#: The store's own view: every layer, every feature, every field (the CLI, imports, the system itself).
EVERYTHING = Scope("system", frozenset({Role.ADMIN.value}))
#: No credential.
PUBLIC = Scope("public", frozenset({Role.PUBLIC.value}))


def scope_not_found(layer_id: str, fid: int) -> NotFoundError:
    """A feature outside the scope is answered as one that does not exist: its existence is not told."""
    return NotFoundError(f"layer '{layer_id}' has no feature {fid}", layer=layer_id, feature=fid)
