// Vietnamese by default, English on demand; numbers and dates always in the chosen locale (vi-VN by default).

export type Lang = 'vi' | 'en';

const STRINGS = {
  vi: {
    appTitle: 'Twin — Bản đồ số',
    layers: 'Lớp dữ liệu',
    search: 'Tìm địa chỉ, thửa đất, phường/xã…',
    noResults: 'Không tìm thấy kết quả',
    table: 'Bảng thuộc tính',
    draw: 'Vẽ vùng',
    drawPolygon: 'Vẽ đa giác',
    drawCircle: 'Vẽ hình tròn',
    radius: 'Bán kính (m)',
    finish: 'Hoàn tất',
    clear: 'Xoá',
    cancel: 'Huỷ',
    polygonHint: 'Nhấp để thêm đỉnh, nhấp đúp hoặc bấm “Hoàn tất” để kết thúc.',
    circleHint: 'Nhấp vào tâm hình tròn trên bản đồ.',
    layersToQuery: 'Truy vấn các lớp',
    featuresInside: 'Đối tượng trong vùng',
    exportGeojson: 'Xuất GeoJSON',
    exportCsv: 'Xuất CSV',
    filter: 'Bộ lọc',
    addCondition: 'Thêm điều kiện',
    apply: 'Áp dụng',
    onlyInView: 'Chỉ trong khung nhìn',
    all: 'Tất cả',
    any: 'Bất kỳ',
    rows: 'bản ghi',
    more: 'Tải thêm',
    matched: 'Số kết quả',
    opacity: 'Độ trong suốt',
    legend: 'Chú giải',
    close: 'Đóng',
    loading: 'Đang tải…',
    error: 'Lỗi',
    offline: 'Mất kết nối máy chủ — đang thử lại…',
    snapshot: 'Ảnh chụp',
    stream: 'Xem luồng video',
    count: 'Số đối tượng',
    language: 'English',
    terrain: 'Địa hình 3D',
    noTiles: 'Máy chủ chưa có vector tiles: lớp lớn chỉ hiển thị khi phóng to',
    kind_admin_area: 'Địa giới hành chính',
    kind_address_point: 'Địa chỉ số',
    kind_address: 'Địa chỉ số',
    kind_parcel: 'Đất đai',
    kind_infrastructure: 'Hạ tầng',
    kind_camera: 'Camera',
    kind_sensor: 'Cảm biến',
    kind_vessel: 'Tàu thuyền',
    kind_incident: 'Phản ánh hiện trường',
    kind_generic: 'Khác',
    kpiTitle: 'Chỉ số theo phường, xã',
    kpiOpen: 'Phản ánh đang xử lý',
    kpiOverdue: 'Quá hạn',
    kpiSensors: 'Cảm biến vượt ngưỡng',
    kpiVessels: 'Tàu đang trên biển',
    kpiWard: 'Phường, xã',
    updated: 'Cập nhật',
    province: 'Toàn thành phố',
    outsideWards: 'Ngoài địa giới phường, xã',
    account: 'Tài khoản',
    apiKey: 'Khoá API',
    signIn: 'Đăng nhập',
    signInOidc: 'Đăng nhập bằng tài khoản của tổ chức',
    signOut: 'Đăng xuất',
    signedInAs: 'Đang đăng nhập',
    roles: 'Vai trò',
    areas: 'Địa bàn',
    allAreas: 'Toàn bộ',
    signedOut: 'Chưa đăng nhập: chỉ xem được các lớp công khai.',
    signInFailed: 'Đăng nhập không thành công',
    keyRefused: 'Khoá truy cập bị từ chối — chỉ hiển thị các lớp công khai',
  },
  en: {
    appTitle: 'Twin — Digital map',
    layers: 'Layers',
    search: 'Search an address, parcel, ward…',
    noResults: 'Nothing found',
    table: 'Attribute table',
    draw: 'Draw an area',
    drawPolygon: 'Draw polygon',
    drawCircle: 'Draw circle',
    radius: 'Radius (m)',
    finish: 'Finish',
    clear: 'Clear',
    cancel: 'Cancel',
    polygonHint: 'Click to add vertices; double-click or press “Finish” to end.',
    circleHint: 'Click the centre of the circle on the map.',
    layersToQuery: 'Layers to query',
    featuresInside: 'Features inside',
    exportGeojson: 'Export GeoJSON',
    exportCsv: 'Export CSV',
    filter: 'Filter',
    addCondition: 'Add condition',
    apply: 'Apply',
    onlyInView: 'Only in view',
    all: 'All',
    any: 'Any',
    rows: 'rows',
    more: 'Load more',
    matched: 'Matched',
    opacity: 'Opacity',
    legend: 'Legend',
    close: 'Close',
    loading: 'Loading…',
    error: 'Error',
    offline: 'Server unreachable — retrying…',
    snapshot: 'Snapshot',
    stream: 'Open video stream',
    count: 'Features',
    language: 'Tiếng Việt',
    terrain: '3D terrain',
    noTiles: 'The server has no vector tiles yet: large layers show only when zoomed in',
    kind_admin_area: 'Administrative areas',
    kind_address_point: 'Address points',
    kind_address: 'Address points',
    kind_parcel: 'Land',
    kind_infrastructure: 'Infrastructure',
    kind_camera: 'Cameras',
    kind_sensor: 'Sensors',
    kind_vessel: 'Vessels',
    kind_incident: 'Citizen reports',
    kind_generic: 'Other',
    kpiTitle: 'Indicators by ward',
    kpiOpen: 'Open reports',
    kpiOverdue: 'Overdue',
    kpiSensors: 'Sensors over threshold',
    kpiVessels: 'Vessels at sea',
    kpiWard: 'Ward',
    updated: 'Updated',
    province: 'Whole city',
    outsideWards: 'Outside the wards',
    account: 'Account',
    apiKey: 'API key',
    signIn: 'Sign in',
    signInOidc: "Sign in with the organisation's account",
    signOut: 'Sign out',
    signedInAs: 'Signed in as',
    roles: 'Roles',
    areas: 'Areas',
    allAreas: 'All',
    signedOut: 'Not signed in: only the public layers are shown.',
    signInFailed: 'Sign-in failed',
    keyRefused: 'The access key was refused — showing the public layers only',
  },
} as const;

export type MessageKey = keyof (typeof STRINGS)['vi'];

let current: Lang = 'vi';

export function setLang(lang: Lang): void {
  current = lang;
  document.documentElement.lang = lang;
}

export function lang(): Lang {
  return current;
}

export function t(key: MessageKey): string {
  return STRINGS[current][key] ?? STRINGS.vi[key] ?? key;
}

function locale(): string {
  return current === 'vi' ? 'vi-VN' : 'en-GB';
}

export function formatNumber(value: number, digits?: number): string {
  return new Intl.NumberFormat(locale(), digits === undefined ? {} : { maximumFractionDigits: digits }).format(value);
}

export function formatDateTime(value: string | Date): string {
  const date = typeof value === 'string' ? new Date(value) : value;
  if (Number.isNaN(date.getTime())) return String(value);
  return new Intl.DateTimeFormat(locale(), { dateStyle: 'short', timeStyle: 'short', timeZone: 'Asia/Ho_Chi_Minh' })
    .format(date);
}

/** A property value for display, by its queryables type. */
export function formatValue(value: unknown, type?: string, format?: string): string {
  if (value === null || value === undefined || value === '') return '—';
  if (typeof value === 'number') return formatNumber(value, type === 'integer' ? 0 : 2);
  if (typeof value === 'boolean') return value ? (current === 'vi' ? 'Có' : 'Yes') : current === 'vi' ? 'Không' : 'No';
  if (format === 'date-time' || format === 'date') return formatDateTime(String(value));
  return String(value);
}
