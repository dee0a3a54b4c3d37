import { entryLink, type Subscription } from './model.js';
import { refusalLine } from './formats.js';
import { gib } from './state.js';

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
  return `<figure><div class="qr">${await qrSvg(link)}</div><figcaption>${escapeHtml(label)}<br><code>${escapeHtml(link)}</code></figcaption></figure>`;
}

const STYLE = `body{font-family:system-ui,sans-serif;max-width:46rem;margin:1rem auto;padding:0 1rem;line-height:1.45;color:#222}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}code{word-break:break-all;font-size:.8rem}
figure{margin:.8rem 0;display:flex;gap:1rem;align-items:center}.qr{flex:0 0 11rem}.qr svg{width:11rem;height:11rem}
.warn{background:#fff3cd;border:1px solid #e0c36b;padding:.6rem .8rem}ul{padding-left:1.2rem}`;

export async function htmlPage(sub: Subscription, links: PageLinks): Promise<string> {
  const used = sub.upload + sub.download;
  const facts = [
    `Used ${gib(used)}${sub.limitBytes !== null ? ` of ${gib(sub.limitBytes)}` : ''} in the current period`,
    sub.expiresAt !== null
      ? `Expires ${new Date(sub.expiresAt).toISOString().slice(0, 16)}Z`
      : 'Does not expire',
  ];
  const parts: string[] = [
    `<h1>${escapeHtml(sub.title)}</h1>`,
    `<p>${facts.map(escapeHtml).join(' · ')}</p>`,
    '<p>Keep this page private: its address and every link on it let anyone use this key.</p>',
  ];
  if (sub.refusal) {
    parts.push(
      `<p class="warn">${escapeHtml(refusalLine(sub.refusal))}. Ask whoever gave you this link.</p>`,
    );
  } else {
    if (links.subscription) {
      parts.push(
        '<h2>Apps that take a subscription link</h2>',
        '<ul><li><b>Clash Verge, mihomo, FlClash, Stash</b>: Profiles → import from URL.</li>' +
          '<li><b>sing-box (SFA, SFI, SFM), Hiddify</b>: New profile → Remote → paste the link.</li>' +
          '<li><b>v2rayNG, v2rayN, Shadowrocket, Streisand, Happ</b>: Subscription group settings → add the link, then update.</li>' +
          '<li><b>shadowsocks-rust / shadowsocks-android</b>: online config (SIP008): the link with <code>/sip008</code> at the end.</li></ul>',
        await linkBlock('Subscription link (the app picks its format; scan or paste)', links.subscription),
      );
    }
    if (links.outline) {
      parts.push(
        '<h2>Outline</h2>',
        '<p>Outline app: tap <b>+</b> (Add server) and paste or scan this key. It is re-read on every connect, so it keeps working if the server moves.</p>',
        await linkBlock('Outline dynamic key', links.outline),
      );
    }
    parts.push(
      '<h2>One server at a time (any Shadowsocks app)</h2>',
      "<p>Scan or paste into any Shadowsocks app (Outline takes the plain one; the <i>(web)</i> one needs v2ray-plugin: shadowsocks-android with the plugin, v2rayNG, Shadowrocket, Clash, sing-box). The command-line client: <code>ladder client --key 'ss://…'</code>.</p>",
    );
    for (const e of sub.entries) {
      const link = entryLink(
        e,
        e.ws ? {} : { outline: true, ...(links.prefix ? { prefix: links.prefix } : {}) },
      );
      parts.push(await linkBlock(e.name, link));
    }
  }
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex"><meta name="referrer" content="no-referrer">
<title>${escapeHtml(sub.title)}</title><style>${STYLE}</style></head>
<body>
${parts.join('\n')}
</body></html>
`;
}
