"""Layer definitions (the ``layers.json`` contract) of the sample city.

The definitions are plain dicts in exactly the JSON shape the server reads,
so what the generator writes is what a user gets; choices that come from the
vocabulary files (land-use codes, incident categories, sensor kinds…) are
filled in from the inputs so the two can never disagree.
"""

from __future__ import annotations

from typing import Any

from twin.samplecity.inputs import SampleInputs

LAYER_ORDER = (
    "wards",
    "address_points",
    "parcels",
    "roads",
    "street_lights",
    "drainage",
    "cameras",
    "sensors",
    "vessels",
    "vessel_tracks",
    "incidents",
)

INCIDENT_STATUSES = ["new", "in_progress", "resolved", "closed"]
URGENCIES = ["routine", "urgent"]
LIGHT_STATUSES = ["on", "off", "fault"]
LAMP_TYPES = ["LED", "Sodium"]
CAMERA_TYPES = ["traffic", "security", "flood"]
CAMERA_STATUSES = ["online", "offline"]
DRAIN_MATERIALS = ["Bê tông cốt thép", "Gạch xây", "Nhựa HDPE"]
DRAIN_CONDITIONS = ["good", "fair", "poor"]
WARD_TYPES = ["Phường", "Xã"]

Field = dict[str, Any]


def _field(
    name: str,
    type_: str,
    title: str,
    required: bool = True,
    choices: list[str] | None = None,
    sensitive: bool = False,
) -> Field:
    return {
        "name": name,
        "type": type_,
        "title": title,
        "required": required,
        "choices": choices,
        "sensitive": sensitive,
    }


#: Who may use each layer: the base map is public; operations layers are for signed-in roles, and the
#: roles that act on them may change them (admin may do everything everywhere).
SIGNED_IN = ["province", "ward_officer", "gis_client"]
ACCESS: dict[str, dict[str, Any]] = {
    "wards": {"public": True},
    "address_points": {"public": True},
    "parcels": {"public": True},
    "roads": {"public": True},
    "street_lights": {"read": SIGNED_IN, "write": ["province"]},
    "drainage": {"read": SIGNED_IN, "write": ["province"]},
    "cameras": {"read": SIGNED_IN, "write": ["province"]},
    "sensors": {"read": SIGNED_IN, "write": ["province"]},
    "vessels": {"read": SIGNED_IN, "write": ["province"]},
    "vessel_tracks": {"read": SIGNED_IN},
    # Citizen reports: the wards act on their own; the reporter's contact is for those who handle the case.
    "incidents": {"read": SIGNED_IN, "write": ["province", "ward_officer"], "sensitive": ["province", "ward_officer"]},
}


def _style(
    color: str,
    fill_color: str | None,
    *,
    opacity: float = 0.8,
    line_width: float = 1.0,
    radius: float = 4.0,
    min_zoom: int = 10,
    label_field: str | None = None,
    extrude_field: str | None = None,
    icon: str | None = None,
) -> dict[str, Any]:
    return {
        "color": color,
        "fill_color": fill_color,
        "opacity": opacity,
        "line_width": line_width,
        "radius": radius,
        "min_zoom": min_zoom,
        "max_zoom": 22,
        "label_field": label_field,
        "extrude_field": extrude_field,
        "icon": icon,
    }


def _layer(
    layer_id: str,
    title: str,
    description: str,
    kind: str,
    geometry_type: str,
    fields: list[Field],
    style: dict[str, Any],
    time_field: str | None = None,
    end_time_field: str | None = None,
) -> dict[str, Any]:
    return {
        "id": layer_id,
        "title": title,
        "description": description,
        "kind": kind,
        "geometry_type": geometry_type,
        "fields": fields,
        "time_field": time_field,
        "end_time_field": end_time_field,
        "source_crs": "EPSG:4326",
        "style": style,
        "access": ACCESS[layer_id],
    }


def build_definitions(inputs: SampleInputs) -> dict[str, dict[str, Any]]:
    """All layer definitions, keyed by id, in load order."""
    ward_names = [w.name for w in inputs.wards]
    builders = {
        "wards": lambda: _wards(),
        "address_points": lambda: _address_points(ward_names),
        "parcels": lambda: _parcels(inputs, ward_names),
        "roads": lambda: _roads(inputs),
        "street_lights": lambda: _street_lights(),
        "drainage": lambda: _drainage(),
        "cameras": lambda: _cameras(ward_names),
        "sensors": lambda: _sensors(inputs),
        "vessels": lambda: _vessels(inputs),
        "vessel_tracks": lambda: _vessel_tracks(),
        "incidents": lambda: _incidents(inputs, ward_names),
    }
    return {layer_id: builders[layer_id]() for layer_id in LAYER_ORDER}


def _wards() -> dict[str, Any]:
    return _layer(
        "wards",
        "Phường, xã",
        "Ranh giới các phường, xã của thành phố Quy Nhơn và vùng phụ cận.",
        "admin_area",
        "MultiPolygon",
        [
            _field("code", "string", "Mã đơn vị hành chính"),
            _field("name", "string", "Tên phường, xã"),
            _field("ward_type", "string", "Loại đơn vị", choices=WARD_TYPES),
            _field("population", "integer", "Dân số"),
            _field("area_km2", "number", "Diện tích (km²)"),
        ],
        _style("#6a51a3", "#bcbddc", opacity=0.25, line_width=2.0, min_zoom=8, label_field="name"),
    )


def _address_points(ward_names: list[str]) -> dict[str, Any]:
    return _layer(
        "address_points",
        "Địa chỉ số",
        "Điểm địa chỉ số gắn với số nhà dọc các tuyến đường.",
        "address_point",
        "Point",
        [
            _field("house_number", "string", "Số nhà"),
            _field("street", "string", "Tên đường"),
            _field("ward", "string", "Phường, xã", choices=ward_names),
            _field("full_address", "string", "Địa chỉ đầy đủ"),
            _field("postcode", "string", "Mã bưu chính"),
        ],
        _style("#636363", "#bdbdbd", opacity=0.9, radius=2.5, min_zoom=14, label_field="house_number"),
    )


def _parcels(inputs: SampleInputs, ward_names: list[str]) -> dict[str, Any]:
    owners = sorted({o for lu in inputs.land_uses for o in lu.owner_types})
    return _layer(
        "parcels",
        "Thửa đất",
        "Thửa đất địa chính với loại đất, số tầng và chiều cao công trình.",
        "parcel",
        "Polygon",
        [
            _field("parcel_no", "string", "Số thửa"),
            _field("map_sheet", "string", "Tờ bản đồ"),
            _field("land_use", "string", "Mã loại đất", choices=[lu.code for lu in inputs.land_uses]),
            _field("land_use_name", "string", "Loại đất", choices=[lu.name for lu in inputs.land_uses]),
            _field("area_m2", "number", "Diện tích (m²)"),
            _field("floors", "integer", "Số tầng"),
            _field("height_m", "number", "Chiều cao (m)"),
            _field("ward", "string", "Phường, xã", choices=ward_names),
            _field("owner_type", "string", "Đối tượng sử dụng", choices=owners),
        ],
        _style(
            "#8c6d31",
            "#e7cb94",
            opacity=0.7,
            line_width=0.5,
            min_zoom=13,
            label_field="parcel_no",
            extrude_field="height_m",
        ),
    )


def _roads(inputs: SampleInputs) -> dict[str, Any]:
    return _layer(
        "roads",
        "Tuyến đường",
        "Tim đường của mạng lưới giao thông đô thị.",
        "infrastructure",
        "LineString",
        [
            _field("name", "string", "Tên đường"),
            _field("road_class", "string", "Cấp đường", choices=list(inputs.road_classes)),
            _field("width_m", "number", "Bề rộng (m)"),
            _field("lanes", "integer", "Số làn xe"),
        ],
        _style("#525252", None, opacity=0.9, line_width=3.0, min_zoom=11, label_field="name"),
    )


def _street_lights() -> dict[str, Any]:
    return _layer(
        "street_lights",
        "Đèn chiếu sáng",
        "Cột đèn chiếu sáng công cộng dọc các tuyến đường.",
        "infrastructure",
        "Point",
        [
            _field("light_id", "string", "Mã đèn"),
            _field("power_w", "integer", "Công suất (W)"),
            _field("lamp_type", "string", "Loại bóng", choices=LAMP_TYPES),
            _field("status", "string", "Trạng thái", choices=LIGHT_STATUSES),
            _field("road", "string", "Tuyến đường"),
        ],
        _style("#d9a400", "#fee391", opacity=0.9, radius=3.0, min_zoom=15, icon="lightbulb"),
    )


def _drainage() -> dict[str, Any]:
    return _layer(
        "drainage",
        "Cống thoát nước",
        "Đoạn cống thoát nước dọc tuyến đường, hướng chảy ra biển hoặc đầm.",
        "infrastructure",
        "LineString",
        [
            _field("drain_id", "string", "Mã đoạn cống"),
            _field("diameter_mm", "integer", "Đường kính (mm)"),
            _field("material", "string", "Vật liệu", choices=DRAIN_MATERIALS),
            _field("condition", "string", "Tình trạng", choices=DRAIN_CONDITIONS),
        ],
        _style("#2171b5", None, opacity=0.9, line_width=2.0, min_zoom=13, label_field="drain_id"),
    )


def _cameras(ward_names: list[str]) -> dict[str, Any]:
    return _layer(
        "cameras",
        "Camera giám sát",
        "Camera giao thông, an ninh và cảnh báo ngập tại các ngã tư.",
        "camera",
        "Point",
        [
            _field("camera_id", "string", "Mã camera"),
            _field("name", "string", "Tên camera"),
            _field("camera_type", "string", "Loại camera", choices=CAMERA_TYPES),
            _field("stream_url", "string", "Luồng video"),
            _field("snapshot_url", "string", "Ảnh chụp"),
            _field("status", "string", "Trạng thái", choices=CAMERA_STATUSES),
            _field("ward", "string", "Phường, xã", choices=ward_names),
        ],
        _style("#d7301f", "#fc8d59", opacity=0.95, radius=5.0, min_zoom=12, label_field="name", icon="camera"),
    )


def _sensors(inputs: SampleInputs) -> dict[str, Any]:
    return _layer(
        "sensors",
        "Cảm biến quan trắc",
        "Cảm biến bụi mịn, mực nước và độ mặn với giá trị đo mới nhất.",
        "sensor",
        "Point",
        [
            _field("sensor_id", "string", "Mã cảm biến"),
            _field("sensor_type", "string", "Loại cảm biến", choices=[k.type for k in inputs.sensor_kinds]),
            _field("name", "string", "Tên trạm"),
            _field("unit", "string", "Đơn vị", choices=[k.unit for k in inputs.sensor_kinds]),
            _field("threshold", "number", "Ngưỡng cảnh báo"),
            _field("last_value", "number", "Giá trị đo gần nhất"),
            _field("observed_at", "datetime", "Thời điểm đo"),
            _field("ward", "string", "Phường, xã", required=False),
        ],
        _style("#238b45", "#74c476", opacity=0.95, radius=6.0, min_zoom=10, label_field="name", icon="sensor"),
        time_field="observed_at",
    )


def _vessels(inputs: SampleInputs) -> dict[str, Any]:
    return _layer(
        "vessels",
        "Tàu cá",
        "Vị trí mới nhất của tàu cá đang hoạt động trên biển.",
        "vessel",
        "Point",
        [
            _field("registration_no", "string", "Số đăng ký"),
            _field("name", "string", "Tên tàu"),
            _field("mmsi", "string", "Số MMSI"),
            _field("length_m", "number", "Chiều dài (m)"),
            _field("home_port", "string", "Cảng cá", choices=[p.name for p in inputs.vessels.home_ports]),
            _field("status", "string", "Trạng thái", choices=[s.name for s in inputs.vessels.statuses]),
            _field("speed_kn", "number", "Tốc độ (hải lý/giờ)"),
            _field("heading", "number", "Hướng đi (độ)"),
            _field("observed_at", "datetime", "Thời điểm ghi nhận"),
        ],
        _style("#08519c", "#6baed6", opacity=0.95, radius=5.0, min_zoom=8, label_field="name", icon="ship"),
        time_field="observed_at",
    )


def _vessel_tracks() -> dict[str, Any]:
    return _layer(
        "vessel_tracks",
        "Hành trình tàu cá",
        "Hành trình 24 giờ của từng tàu cá, mỗi 10 phút một vị trí.",
        "vessel",
        "LineString",
        [
            _field("registration_no", "string", "Số đăng ký"),
            _field("started_at", "datetime", "Bắt đầu"),
            _field("ended_at", "datetime", "Kết thúc"),
            _field("distance_km", "number", "Quãng đường (km)"),
        ],
        _style("#4292c6", None, opacity=0.6, line_width=1.2, min_zoom=8),
        time_field="started_at",
        end_time_field="ended_at",
    )


def _incidents(inputs: SampleInputs, ward_names: list[str]) -> dict[str, Any]:
    return _layer(
        "incidents",
        "Phản ánh hiện trường",
        "Phản ánh của người dân về các vấn đề đô thị trong năm qua.",
        "incident",
        "Point",
        [
            _field("incident_id", "string", "Mã phản ánh"),
            _field("category", "string", "Lĩnh vực", choices=[c.name for c in inputs.incident_categories]),
            _field("title", "string", "Tiêu đề"),
            _field("urgency", "string", "Mức độ khẩn", choices=URGENCIES),
            _field("status", "string", "Trạng thái xử lý", choices=INCIDENT_STATUSES),
            _field("ward", "string", "Phường, xã", choices=ward_names),
            _field("reported_at", "datetime", "Thời điểm phản ánh"),
            _field("due_at", "datetime", "Hạn xử lý"),
            _field("resolved_at", "datetime", "Thời điểm xử lý xong", required=False),
            _field("reporter_name", "string", "Người phản ánh", required=False, sensitive=True),
            _field("reporter_phone", "string", "Số điện thoại người phản ánh", required=False, sensitive=True),
        ],
        _style("#e6550d", "#fdae6b", opacity=0.9, radius=4.0, min_zoom=11, label_field="title", icon="alert"),
        time_field="reported_at",
    )
