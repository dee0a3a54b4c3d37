// The dashboard's languages. The browser's preference chooses the first time; the switcher's
// choice is kept in localStorage. Persian is written right to left (dir="rtl" on <html>).

export type Lang = 'en' | 'zh' | 'fa' | 'ru';
export const LANGS: readonly { code: Lang; tag: string; label: string; rtl?: boolean }[] = [
  { code: 'en', tag: 'en', label: 'English' },
  { code: 'zh', tag: 'zh-CN', label: '简体中文' },
  { code: 'fa', tag: 'fa', label: 'فارسی', rtl: true },
  { code: 'ru', tag: 'ru', label: 'Русский' },
];

const en = {
  overview: 'Overview',
  keys: 'Keys',
  settings: 'Settings',
  nodes: 'Nodes',
  language: 'Language',
  refresh: 'Refresh',
  loading: 'Loading…',
  error: 'Something went wrong',
  traffic30: 'Traffic, last 30 days',
  activeKeys: 'Active keys',
  openConnections: 'Open connections',
  serverStatus: 'Server',
  transports: 'Transports in use',
  running: 'Running since',
  version: 'Version',
  total: 'Total',
  upload: 'Upload',
  download: 'Download',
  st_active: 'active',
  st_over_limit: 'limited',
  st_expired: 'expired',
  st_disabled: 'disabled',
  name: 'Name',
  status: 'Status',
  usage: 'Usage',
  expiry: 'Expiry',
  lastSeen: 'Last seen',
  actions: 'Actions',
  never: 'never',
  noLimit: 'no limit',
  search: 'Search keys',
  allStates: 'All states',
  sortBy: 'Sort by',
  selected: 'selected',
  selectAll: 'Select all shown',
  select: 'Select',
  createKeys: 'Create keys',
  count: 'How many',
  create: 'Create',
  cancel: 'Cancel',
  save: 'Save',
  close: 'Close',
  extendExpiry: 'Extend expiry',
  days: 'days',
  disable: 'Disable',
  enable: 'Enable',
  delete: 'Delete',
  edit: 'Edit',
  confirmDelete: 'Delete these keys? Apps using them stop working.',
  copySs: 'Copy ss://',
  copyDynamic: 'Copy dynamic key',
  copySub: 'Copy subscription',
  qr: 'QR code',
  copied: 'Copied',
  limitGb: 'Data limit (GB, empty = none)',
  period: 'Reset period',
  p_rolling30d: 'rolling 30 days',
  p_daily: 'daily',
  p_weekly: 'weekly',
  p_monthly: 'monthly',
  resets: 'resets',
  expiresAt: 'Expires (empty = never)',
  prefix: 'Outline prefix (auto, off or hex)',
  keyUsage: 'Usage, last 30 days',
  links: 'Links and apps',
  inst_sub: 'Subscription: paste into Hiddify, v2rayN/NG, Shadowrocket, Clash Verge or sing-box (“add profile from URL”). It lists every way in and updates itself.',
  inst_dynamic: 'Dynamic key (ssconf://): paste into Outline. It follows server moves.',
  inst_ss: 'ss:// key: any Shadowsocks app (Outline, shadowsocks-android, ss-local). Fixed server and port.',
  back: 'All keys',
  serverName: 'Server name',
  hostname: 'Hostname for keys',
  portNew: 'Port for new keys',
  defaultLimit: 'Default data limit (GB, empty = none)',
  dynamicBase: 'Dynamic key base URL (empty = this server)',
  webFront: 'Web front (WebSocket) and decoy',
  webFrontNote: 'Set when starting the server: ladder server --web-port … --decoy …',
  none: 'none',
  saved: 'Saved',
  page: 'Page',
  prev: 'Previous',
  next: 'Next',
  noKeys: 'No keys match.',
  keysTotal: 'keys',
} as const;

export type Strings = Record<keyof typeof en, string>;

const zh: Strings = {
  overview: '概览', keys: '密钥', settings: '设置', nodes: '节点', language: '语言', refresh: '刷新',
  loading: '加载中…', error: '出错了', traffic30: '最近 30 天流量', activeKeys: '活跃密钥',
  openConnections: '当前连接', serverStatus: '服务器', transports: '使用中的传输方式', running: '运行自',
  version: '版本', total: '合计', upload: '上传', download: '下载', st_active: '正常', st_over_limit: '超限',
  st_expired: '已过期', st_disabled: '已停用', name: '名称', status: '状态', usage: '用量', expiry: '到期',
  lastSeen: '最近活动', actions: '操作', never: '从不', noLimit: '无限制', search: '搜索密钥',
  allStates: '全部状态', sortBy: '排序', selected: '已选', selectAll: '全选当前显示', select: '选择',
  createKeys: '创建密钥', count: '数量', create: '创建', cancel: '取消', save: '保存', close: '关闭',
  extendExpiry: '延长有效期', days: '天', disable: '停用', enable: '启用', delete: '删除', edit: '编辑',
  confirmDelete: '删除这些密钥？使用它们的应用将无法连接。', copySs: '复制 ss://', copyDynamic: '复制动态密钥',
  copySub: '复制订阅链接', qr: '二维码', copied: '已复制', limitGb: '流量上限（GB，留空为不限）',
  period: '重置周期', p_rolling30d: '滚动 30 天', p_daily: '每天', p_weekly: '每周', p_monthly: '每月',
  resets: '重置于', expiresAt: '到期时间（留空为永不）', prefix: 'Outline 前缀（auto、off 或十六进制）',
  keyUsage: '最近 30 天用量', links: '链接与应用',
  inst_sub: '订阅：粘贴到 Hiddify、v2rayN/NG、Shadowrocket、Clash Verge 或 sing-box（“从 URL 添加配置”）。它包含所有接入方式并自动更新。',
  inst_dynamic: '动态密钥（ssconf://）：粘贴到 Outline。服务器迁移后仍可用。',
  inst_ss: 'ss:// 密钥：任何 Shadowsocks 应用（Outline、shadowsocks-android、ss-local）。服务器和端口固定。',
  back: '全部密钥', serverName: '服务器名称', hostname: '密钥使用的主机名', portNew: '新密钥端口',
  defaultLimit: '默认流量上限（GB，留空为不限）', dynamicBase: '动态密钥基础 URL（留空为本服务器）',
  webFront: 'Web 前端（WebSocket）与伪装站点', webFrontNote: '在启动服务器时设置：ladder server --web-port … --decoy …',
  none: '无', saved: '已保存', page: '页', prev: '上一页', next: '下一页', noKeys: '没有匹配的密钥。', keysTotal: '个密钥',
};

const fa: Strings = {
  overview: 'نمای کلی', keys: 'کلیدها', settings: 'تنظیمات', nodes: 'گره‌ها', language: 'زبان', refresh: 'تازه‌سازی',
  loading: 'در حال بارگذاری…', error: 'خطایی رخ داد', traffic30: 'ترافیک ۳۰ روز گذشته', activeKeys: 'کلیدهای فعال',
  openConnections: 'اتصال‌های باز', serverStatus: 'سرور', transports: 'روش‌های انتقال در حال استفاده', running: 'در حال اجرا از',
  version: 'نسخه', total: 'مجموع', upload: 'ارسال', download: 'دریافت', st_active: 'فعال', st_over_limit: 'محدودشده',
  st_expired: 'منقضی', st_disabled: 'غیرفعال', name: 'نام', status: 'وضعیت', usage: 'مصرف', expiry: 'انقضا',
  lastSeen: 'آخرین فعالیت', actions: 'کارها', never: 'هرگز', noLimit: 'بدون محدودیت', search: 'جستجوی کلیدها',
  allStates: 'همه وضعیت‌ها', sortBy: 'مرتب‌سازی', selected: 'انتخاب‌شده', selectAll: 'انتخاب همه موارد نمایش‌داده‌شده', select: 'انتخاب',
  createKeys: 'ساخت کلید', count: 'تعداد', create: 'ساختن', cancel: 'انصراف', save: 'ذخیره', close: 'بستن',
  extendExpiry: 'تمدید انقضا', days: 'روز', disable: 'غیرفعال کردن', enable: 'فعال کردن', delete: 'حذف', edit: 'ویرایش',
  confirmDelete: 'این کلیدها حذف شوند؟ برنامه‌هایی که از آن‌ها استفاده می‌کنند دیگر کار نمی‌کنند.', copySs: 'کپی ss://',
  copyDynamic: 'کپی کلید پویا', copySub: 'کپی لینک اشتراک', qr: 'کد QR', copied: 'کپی شد',
  limitGb: 'سقف داده (گیگابایت، خالی = بدون سقف)', period: 'دوره بازنشانی', p_rolling30d: '۳۰ روز گذشته',
  p_daily: 'روزانه', p_weekly: 'هفتگی', p_monthly: 'ماهانه', resets: 'بازنشانی', expiresAt: 'انقضا (خالی = هرگز)',
  prefix: 'پیشوند Outline (auto، off یا هگز)', keyUsage: 'مصرف ۳۰ روز گذشته', links: 'لینک‌ها و برنامه‌ها',
  inst_sub: 'اشتراک: در Hiddify، v2rayN/NG، Shadowrocket، Clash Verge یا sing-box بچسبانید («افزودن پروفایل از URL»). همه راه‌های اتصال را دارد و خودکار به‌روز می‌شود.',
  inst_dynamic: 'کلید پویا (ssconf://): در Outline بچسبانید. با جابه‌جایی سرور هم کار می‌کند.',
  inst_ss: 'کلید ss://: هر برنامه Shadowsocks (Outline، shadowsocks-android، ss-local). سرور و پورت ثابت.',
  back: 'همه کلیدها', serverName: 'نام سرور', hostname: 'نام میزبان برای کلیدها', portNew: 'پورت کلیدهای جدید',
  defaultLimit: 'سقف پیش‌فرض داده (گیگابایت، خالی = بدون سقف)', dynamicBase: 'نشانی پایه کلید پویا (خالی = همین سرور)',
  webFront: 'جبهه وب (WebSocket) و سایت پوششی', webFrontNote: 'هنگام اجرای سرور تنظیم می‌شود: ladder server --web-port … --decoy …',
  none: 'هیچ', saved: 'ذخیره شد', page: 'صفحه', prev: 'قبلی', next: 'بعدی', noKeys: 'کلیدی پیدا نشد.', keysTotal: 'کلید',
};

const ru: Strings = {
  overview: 'Обзор', keys: 'Ключи', settings: 'Настройки', nodes: 'Узлы', language: 'Язык', refresh: 'Обновить',
  loading: 'Загрузка…', error: 'Что-то пошло не так', traffic30: 'Трафик за 30 дней', activeKeys: 'Активные ключи',
  openConnections: 'Открытые соединения', serverStatus: 'Сервер', transports: 'Используемые транспорты', running: 'Работает с',
  version: 'Версия', total: 'Всего', upload: 'Отправлено', download: 'Получено', st_active: 'активен', st_over_limit: 'лимит',
  st_expired: 'истёк', st_disabled: 'отключён', name: 'Имя', status: 'Статус', usage: 'Трафик', expiry: 'Срок',
  lastSeen: 'Активность', actions: 'Действия', never: 'никогда', noLimit: 'без лимита', search: 'Поиск ключей',
  allStates: 'Все статусы', sortBy: 'Сортировка', selected: 'выбрано', selectAll: 'Выбрать все показанные', select: 'Выбрать',
  createKeys: 'Создать ключи', count: 'Сколько', create: 'Создать', cancel: 'Отмена', save: 'Сохранить', close: 'Закрыть',
  extendExpiry: 'Продлить срок', days: 'дней', disable: 'Отключить', enable: 'Включить', delete: 'Удалить', edit: 'Изменить',
  confirmDelete: 'Удалить эти ключи? Приложения с ними перестанут работать.', copySs: 'Копировать ss://',
  copyDynamic: 'Копировать динамический ключ', copySub: 'Копировать подписку', qr: 'QR-код', copied: 'Скопировано',
  limitGb: 'Лимит трафика (ГБ, пусто = нет)', period: 'Период сброса', p_rolling30d: 'скользящие 30 дней',
  p_daily: 'ежедневно', p_weekly: 'еженедельно', p_monthly: 'ежемесячно', resets: 'сброс', expiresAt: 'Истекает (пусто = никогда)',
  prefix: 'Префикс Outline (auto, off или hex)', keyUsage: 'Трафик за 30 дней', links: 'Ссылки и приложения',
  inst_sub: 'Подписка: вставьте в Hiddify, v2rayN/NG, Shadowrocket, Clash Verge или sing-box («добавить профиль по URL»). В ней все способы подключения, она обновляется сама.',
  inst_dynamic: 'Динамический ключ (ssconf://): вставьте в Outline. Работает и после переезда сервера.',
  inst_ss: 'Ключ ss://: любое приложение Shadowsocks (Outline, shadowsocks-android, ss-local). Сервер и порт фиксированы.',
  back: 'Все ключи', serverName: 'Имя сервера', hostname: 'Имя хоста для ключей', portNew: 'Порт новых ключей',
  defaultLimit: 'Лимит по умолчанию (ГБ, пусто = нет)', dynamicBase: 'Базовый URL динамических ключей (пусто = этот сервер)',
  webFront: 'Веб-фронт (WebSocket) и сайт-прикрытие', webFrontNote: 'Задаётся при запуске сервера: ladder server --web-port … --decoy …',
  none: 'нет', saved: 'Сохранено', page: 'Страница', prev: 'Назад', next: 'Вперёд', noKeys: 'Ключей не найдено.', keysTotal: 'ключей',
};

const TABLES: Record<Lang, Strings> = { en, zh, fa, ru };
const STORAGE = 'ladder.lang';

export function initialLang(): Lang {
  try {
    const saved = localStorage.getItem(STORAGE);
    if (saved && saved in TABLES) return saved as Lang;
  } catch {
    // storage disabled
  }
  for (const tag of navigator.languages ?? [navigator.language]) {
    const base = tag.toLowerCase().split('-')[0];
    if (base && base in TABLES) return base as Lang;
  }
  return 'en';
}

export function applyLang(lang: Lang, persist: boolean): Strings {
  const info = LANGS.find((l) => l.code === lang) ?? LANGS[0]!;
  document.documentElement.lang = info.tag;
  document.documentElement.dir = info.rtl ? 'rtl' : 'ltr';
  if (persist) {
    try {
      localStorage.setItem(STORAGE, lang);
    } catch {
      // storage disabled: the choice lasts for this page
    }
  }
  return TABLES[lang];
}

export function localeOf(lang: Lang): string {
  return LANGS.find((l) => l.code === lang)?.tag ?? 'en';
}
