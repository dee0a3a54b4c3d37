import { entryLink, type Subscription } from './model.js';
import { refusalLine } from './formats.js';
import { pageText, type PageLang, type PageText } from './page-text.js';
import { gib, REFUSAL } from './state.js';

/**
 * The page a browser gets at /sub/{token}: the key's state and usage, then per app family what to
 * do, each link with its QR code drawn as inline SVG. No script, no external asset (the response
 * carries a CSP that forbids both), every text from the store HTML-escaped.
 */

export interface PageLinks {
  /** The subscription URL itself (undefined when the server's public base is unknown). */
  subscription?: string | undefined;
  /** ssconf:// of the Outline YAML (undefined for keys Outline cannot use). */
  outline?: string | undefined;
  prefix?: Uint8Array | undefined;
}

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESC[c]!);
}

async function qrSvg(text: string): Promise<string> {
  const { default: QRCode } = await import('qrcode');
  // The library's SVG is two <path> elements built from the module matrix, no text content.
  return QRCode.toString(text, { type: 'svg', margin: 2, errorCorrectionLevel: 'M' });
}

async function linkBlock(label: string, link: string): Promise<string> {
  return `<figure><div class="qr">${await qrSvg(link)}</div><figcaption>${escapeHtml(label)}<br><code dir="ltr">${escapeHtml(link)}</code></figcaption></figure>`;
}

const STYLE = `body{font-family:system-ui,sans-serif;max-width:46rem;margin:1rem auto;padding:0 1rem;line-height:1.45;color:#222}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}code{word-break:break-all;font-size:.8rem}
figure{margin:.8rem 0;display:flex;gap:1rem;align-items:center}.qr{flex:0 0 11rem}.qr svg{width:11rem;height:11rem}
.warn{background:#fff3cd;border:1px solid #e0c36b;padding:.6rem .8rem}ul{padding-inline-start:1.2rem}`;

/** The refused key's line in the page's language (Outline's English for a reason it does not know). */
function refusalText(sub: Subscription, t: PageText): string {
  const r = sub.refusal!;
  const state = (Object.keys(REFUSAL) as (keyof typeof REFUSAL)[]).find((s) => REFUSAL[s] === r.message);
  if (state === undefined) return refusalLine(r);
  const details =
    state === 'over_limit' && sub.limitBytes !== null
      ? t.usedOutOf(gib(sub.upload + sub.download), gib(sub.limitBytes))
      : state === 'expired' && sub.expiresAt !== null
        ? t.expiredAt(new Date(sub.expiresAt).toISOString())
        : undefined;
  return details ? `${t.refusal[state]}: ${details}` : t.refusal[state];
}

export async function htmlPage(sub: Subscription, links: PageLinks, lang: PageLang = 'en'): Promise<string> {
  const t = pageText(lang);
  const used = sub.upload + sub.download;
  const facts = [
    t.used(gib(used), sub.limitBytes !== null ? gib(sub.limitBytes) : undefined),
    sub.expiresAt !== null ? t.expires(`${new Date(sub.expiresAt).toISOString().slice(0, 16)}Z`) : t.noExpiry,
  ];
  const parts: string[] = [
    `<h1>${escapeHtml(sub.title)}</h1>`,
    `<p>${facts.map(escapeHtml).join(' · ')}</p>`,
    `<p>${escapeHtml(t.keepPrivate)}</p>`,
  ];
  if (sub.refusal) {
    parts.push(`<p class="warn">${escapeHtml(refusalText(sub, t))}. ${escapeHtml(t.askGiver)}</p>`);
  } else {
    if (links.subscription) {
      parts.push(
        `<h2>${escapeHtml(t.subTitle)}</h2>`,
        `<ul>${t.subApps.map((li) => `<li>${li}</li>`).join('')}</ul>`,
        await linkBlock(t.subLink, links.subscription),
      );
    }
    if (links.outline) {
      parts.push(
        '<h2>Outline</h2>',
        `<p>${t.outlineText}</p>`,
        await linkBlock(t.outlineLink, links.outline),
      );
    }
    parts.push(
      `<h2>${escapeHtml(t.oneTitle)}</h2>`,
      `<p>${t.oneText.replace('{cmd}', '<code dir="ltr">ladder client --key \'ss://…\'</code>')}</p>`,
    );
    for (const e of sub.entries) {
      const link = entryLink(
        e,
        e.ws || e.stls ? {} : { outline: true, ...(links.prefix ? { prefix: links.prefix } : {}) },
      );
      parts.push(await linkBlock(e.name, link));
    }
  }
  return `<!doctype html>
<html lang="${t.tag}" dir="${t.dir}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex"><meta name="referrer" content="no-referrer">
<title>${escapeHtml(sub.title)}</title><style>${STYLE}</style></head>
<body>
${parts.join('\n')}
</body></html>
`;
}
