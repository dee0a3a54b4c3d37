import type { KeyState } from '../../store/index.js';

/**
 * The words of the subscription page a key holder opens in a browser (/sub/{token}), in the
 * dashboard's four languages, chosen by the browser's Accept-Language; English when none of them
 * is asked for. The dashboard's own tables (web/src/i18n.ts) are browser code with other texts,
 * so the page has its own. HTML in a string is the page's fixed markup (app names in <b>);
 * every value put in is escaped by the page.
 */

export type PageLang = 'en' | 'zh' | 'fa' | 'ru';

export interface PageText {
  /** `<html lang>`. */
  tag: string;
  dir: 'ltr' | 'rtl';
  used: (used: string, limit: string | undefined) => string;
  expires: (when: string) => string;
  noExpiry: string;
  keepPrivate: string;
  refusal: Record<Exclude<KeyState, 'active'>, string>;
  usedOutOf: (used: string, limit: string) => string;
  expiredAt: (when: string) => string;
  askGiver: string;
  subTitle: string;
  /** <li> items (fixed markup). */
  subApps: readonly string[];
  subLink: string;
  outlineText: string;
  outlineLink: string;
  oneTitle: string;
  /** Fixed markup; `{cmd}` is where the command-line example goes. */
  oneText: string;
}

const en: PageText = {
  tag: 'en',
  dir: 'ltr',
  used: (u, l) => `Used ${u}${l !== undefined ? ` of ${l}` : ''} in the current period`,
  expires: (w) => `Expires ${w}`,
  noExpiry: 'Does not expire',
  keepPrivate: 'Keep this page private: its address and every link on it let anyone use this key.',
  refusal: { disabled: 'Access key disabled', expired: 'Access key expired', over_limit: 'Quota exceeded' },
  usedOutOf: (u, l) => `Used ${u} out of ${l}`,
  expiredAt: (w) => `Expired at ${w}`,
  askGiver: 'Ask whoever gave you this link.',
  subTitle: 'Apps that take a subscription link',
  subApps: [
    '<b>Clash Verge, mihomo, FlClash, Stash</b>: Profiles → import from URL.',
    '<b>sing-box (SFA, SFI, SFM), Hiddify</b>: New profile → Remote → paste the link.',
    '<b>v2rayNG, v2rayN, Shadowrocket, Streisand, Happ</b>: Subscription group settings → add the link, then update.',
    '<b>shadowsocks-rust / shadowsocks-android</b>: online config (SIP008): the link with <code>/sip008</code> at the end.',
  ],
  subLink: 'Subscription link (the app picks its format; scan or paste)',
  outlineText:
    'Outline app: tap <b>+</b> (Add server) and paste or scan this key. It is re-read on every connect, so it keeps working if the server moves.',
  outlineLink: 'Outline dynamic key',
  oneTitle: 'One server at a time (any Shadowsocks app)',
  oneText:
    'Scan or paste into any Shadowsocks app (Outline takes the plain one; the <i>(web)</i> one needs v2ray-plugin: shadowsocks-android with the plugin, v2rayNG, Shadowrocket, Clash, sing-box). The command-line client: {cmd}.',
};

const zh: PageText = {
  tag: 'zh-CN',
  dir: 'ltr',
  used: (u, l) => `本周期已用 ${u}${l !== undefined ? `，共 ${l}` : ''}`,
  expires: (w) => `到期时间 ${w}`,
  noExpiry: '永不过期',
  keepPrivate: '请勿公开此页面：知道它的地址或其中任何链接的人都能使用这个密钥。',
  refusal: { disabled: '访问密钥已停用', expired: '访问密钥已过期', over_limit: '流量已用完' },
  usedOutOf: (u, l) => `已用 ${u}，限额 ${l}`,
  expiredAt: (w) => `已于 ${w} 过期`,
  askGiver: '请联系给你这个链接的人。',
  subTitle: '支持订阅链接的应用',
  subApps: [
    '<b>Clash Verge、mihomo、FlClash、Stash</b>：配置 → 从 URL 导入。',
    '<b>sing-box（SFA、SFI、SFM）、Hiddify</b>：新建配置 → 远程 → 粘贴链接。',
    '<b>v2rayNG、v2rayN、Shadowrocket、Streisand、Happ</b>：订阅分组设置 → 添加链接，然后更新。',
    '<b>shadowsocks-rust / shadowsocks-android</b>：在线配置（SIP008）：在链接末尾加上 <code>/sip008</code>。',
  ],
  subLink: '订阅链接（应用会自动选择格式；扫码或粘贴）',
  outlineText:
    'Outline 应用：点 <b>+</b>（添加服务器），粘贴或扫描此密钥。每次连接时都会重新读取，服务器迁移后仍可使用。',
  outlineLink: 'Outline 动态密钥',
  oneTitle: '单个服务器（任何 Shadowsocks 应用）',
  oneText:
    '扫码或粘贴到任何 Shadowsocks 应用（Outline 使用普通的那个；<i>(web)</i> 那个需要 v2ray-plugin：装了插件的 shadowsocks-android、v2rayNG、Shadowrocket、Clash、sing-box）。命令行客户端：{cmd}。',
};

const fa: PageText = {
  tag: 'fa',
  dir: 'rtl',
  used: (u, l) => `مصرف در دورهٔ فعلی: ${u}${l !== undefined ? ` از ${l}` : ''}`,
  expires: (w) => `تاریخ انقضا: ${w}`,
  noExpiry: 'منقضی نمی‌شود',
  keepPrivate:
    'این صفحه را خصوصی نگه دارید: هر کس نشانی آن یا هر پیوندی از آن را داشته باشد می‌تواند از این کلید استفاده کند.',
  refusal: {
    disabled: 'کلید دسترسی غیرفعال است',
    expired: 'کلید دسترسی منقضی شده است',
    over_limit: 'سهمیهٔ داده تمام شده است',
  },
  usedOutOf: (u, l) => `${u} از ${l} مصرف شده`,
  expiredAt: (w) => `منقضی‌شده در ${w}`,
  askGiver: 'از کسی که این پیوند را به شما داده است بپرسید.',
  subTitle: 'برنامه‌هایی که پیوند اشتراک می‌پذیرند',
  subApps: [
    '<b>Clash Verge، mihomo، FlClash، Stash</b>: Profiles ← وارد کردن از URL.',
    '<b>sing-box (SFA، SFI، SFM)، Hiddify</b>: پروفایل جدید ← Remote ← پیوند را بچسبانید.',
    '<b>v2rayNG، v2rayN، Shadowrocket، Streisand، Happ</b>: تنظیمات گروه اشتراک ← پیوند را اضافه کنید، سپس به‌روزرسانی کنید.',
    '<b>shadowsocks-rust / shadowsocks-android</b>: پیکربندی آنلاین (SIP008): پیوند با <code>/sip008</code> در انتها.',
  ],
  subLink: 'پیوند اشتراک (برنامه قالب خود را انتخاب می‌کند؛ اسکن کنید یا بچسبانید)',
  outlineText:
    'برنامهٔ Outline: روی <b>+</b> (افزودن سرور) بزنید و این کلید را بچسبانید یا اسکن کنید. در هر اتصال دوباره خوانده می‌شود، پس اگر سرور جابه‌جا شود هم کار می‌کند.',
  outlineLink: 'کلید پویای Outline',
  oneTitle: 'یک سرور در هر بار (هر برنامهٔ Shadowsocks)',
  oneText:
    'در هر برنامهٔ Shadowsocks اسکن کنید یا بچسبانید (Outline کلید ساده را می‌پذیرد؛ کلید <i>(web)</i> به v2ray-plugin نیاز دارد: shadowsocks-android با افزونه، v2rayNG، Shadowrocket، Clash، sing-box). کلاینت خط فرمان: {cmd}.',
};

const ru: PageText = {
  tag: 'ru',
  dir: 'ltr',
  used: (u, l) => `Использовано ${u}${l !== undefined ? ` из ${l}` : ''} за текущий период`,
  expires: (w) => `Действует до ${w}`,
  noExpiry: 'Бессрочный',
  keepPrivate:
    'Не показывайте эту страницу другим: по её адресу и по любой ссылке на ней кто угодно может пользоваться этим ключом.',
  refusal: {
    disabled: 'Ключ доступа отключён',
    expired: 'Срок ключа доступа истёк',
    over_limit: 'Лимит трафика исчерпан',
  },
  usedOutOf: (u, l) => `Использовано ${u} из ${l}`,
  expiredAt: (w) => `Истёк ${w}`,
  askGiver: 'Обратитесь к тому, кто дал вам эту ссылку.',
  subTitle: 'Приложения, которые принимают ссылку подписки',
  subApps: [
    '<b>Clash Verge, mihomo, FlClash, Stash</b>: Профили → импорт по URL.',
    '<b>sing-box (SFA, SFI, SFM), Hiddify</b>: Новый профиль → Remote → вставьте ссылку.',
    '<b>v2rayNG, v2rayN, Shadowrocket, Streisand, Happ</b>: настройки группы подписки → добавьте ссылку, затем обновите.',
    '<b>shadowsocks-rust / shadowsocks-android</b>: онлайн-конфигурация (SIP008): ссылка с <code>/sip008</code> в конце.',
  ],
  subLink: 'Ссылка подписки (приложение само выберет формат; отсканируйте или вставьте)',
  outlineText:
    'Приложение Outline: нажмите <b>+</b> (Добавить сервер) и вставьте или отсканируйте этот ключ. Он перечитывается при каждом подключении, поэтому продолжит работать, если сервер переедет.',
  outlineLink: 'Динамический ключ Outline',
  oneTitle: 'Один сервер (любое приложение Shadowsocks)',
  oneText:
    'Отсканируйте или вставьте в любое приложение Shadowsocks (Outline берёт обычный ключ; ключу <i>(web)</i> нужен v2ray-plugin: shadowsocks-android с плагином, v2rayNG, Shadowrocket, Clash, sing-box). Клиент для командной строки: {cmd}.',
};

const TABLES: Record<PageLang, PageText> = { en, zh, fa, ru };

/**
 * The page's language for an Accept-Language header (`fa-IR,fa;q=0.9,en;q=0.8`): the asked-for
 * language with the highest weight that the page has (by its primary subtag), else English.
 */
export function pageLang(acceptLanguage: string | undefined): PageLang {
  const asked = (acceptLanguage ?? '')
    .split(',')
    .map((part, i) => {
      const [range, ...params] = part.trim().split(';');
      const q = params.map((p) => /^\s*q=([0-9.]+)\s*$/i.exec(p)?.[1]).find((v) => v !== undefined);
      return {
        base: (range ?? '').trim().toLowerCase().split('-')[0]!,
        q: q === undefined ? 1 : Number(q),
        i,
      };
    })
    .filter((a) => a.q > 0 && Object.hasOwn(TABLES, a.base)) // not `in`: 'constructor' is in every object
    .sort((a, b) => b.q - a.q || a.i - b.i);
  return (asked[0]?.base as PageLang | undefined) ?? 'en';
}

export function pageText(lang: PageLang): PageText {
  return TABLES[lang];
}
