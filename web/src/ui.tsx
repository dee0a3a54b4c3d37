// Small shared pieces: the language context, number and date formats, the status badge, the
// usage bar, the bar chart (inline SVG), the modal dialog, the copy button and the QR code.
import { createContext, type ComponentChildren } from 'preact';
import { useContext, useEffect, useRef, useState } from 'preact/hooks';
import type { KeyRow, KeyState, UsageDay } from './api.js';
import type { Strings } from './i18n.js';

export interface Ui {
  t: Strings;
  locale: string;
  toast: (text: string) => void;
}
export const UiContext = createContext<Ui>(null as unknown as Ui);
export const useUi = (): Ui => useContext(UiContext);

/** Intl formatters made once per locale and options (making one costs more than formatting). */
const formats = new Map<string, Intl.NumberFormat | Intl.DateTimeFormat>();
function format<T extends Intl.NumberFormat | Intl.DateTimeFormat>(key: string, make: () => T): T {
  let f = formats.get(key);
  if (f === undefined) formats.set(key, (f = make()));
  return f as T;
}

/** The dashboard's unit for data limits: GiB, as `ladder keys` prints them (2^30 bytes). */
export const GiB = 2 ** 30;

/**
 * A limit in a GiB field: two decimals at most ("4.66" for the 5 GB `ladder keys limit 2 5GB`
 * sets, "10" for 10 GiB), three significant digits under 1 GiB ("0.488" for 500 MiB), not
 * 4.656612873077393. `limitBytes` reads the field back.
 */
export function gibField(bytes: number | undefined): string {
  if (bytes === undefined) return '';
  const x = bytes / GiB;
  return String(x >= 1 || x === 0 ? Number(x.toFixed(2)) : Number(x.toPrecision(3)));
}

/**
 * The bytes a GiB field stands for: the limit's own bytes while the field still shows `gibField`
 * of it (saving the rounded figure would move the limit), else the number typed (empty: none).
 */
export function limitBytes(text: string, before: number | undefined): number | null {
  const v = text.trim();
  if (before !== undefined && v === gibField(before)) return before;
  if (v === '') return null;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`not a number of GiB: ${v}`);
  return Math.round(n * GiB);
}

/** A speed limit in an Mbit/s field, as gibField: "10", "0.5", "0.00819" (1 KiB/s). */
export function mbitField(bytesPerSecond: number | undefined): string {
  if (bytesPerSecond === undefined) return '';
  const x = (bytesPerSecond * 8) / 1e6;
  return String(x >= 1 ? Number(x.toFixed(2)) : Number(x.toPrecision(3)));
}

/**
 * The bytes per second an Mbit/s field stands for (the limit's own while the field still shows
 * it; empty: none); out of the API's bounds (1 KiB/s to 2^40 B/s) an error naming the field.
 */
export function speedBytes(text: string, before: number | undefined, what: string): number | null {
  const v = text.trim();
  if (before !== undefined && v === mbitField(before)) return before;
  if (v === '') return null;
  const n = Math.round((Number(v) * 1e6) / 8);
  if (!Number.isFinite(n) || n < 1024 || n > 2 ** 40)
    throw new Error(`${what}: 0.0082 – 8796093 Mbit/s, got ${v}`);
  return n;
}

/** A device limit field: empty for none, else a whole number 1–10000 (an error naming the field). */
export function deviceCount(text: string, what: string): number | null {
  const v = text.trim();
  if (v === '') return null;
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 10_000) throw new Error(`${what}: 1–10000, got ${v}`);
  return Number(v);
}

/** A speed as people read it, in bits per second ("10 Mbit/s"), digits in the locale's numerals. */
export function rate(bytesPerSecond: number, locale: string): string {
  const bits = bytesPerSecond * 8;
  for (const [unit, size] of [
    ['Gbit/s', 1e9],
    ['Mbit/s', 1e6],
    ['kbit/s', 1e3],
  ] as const)
    if (bits >= size)
      return `${new Intl.NumberFormat(locale, { maximumFractionDigits: 2 }).format(bits / size)} ${unit}`;
  return `${bits} bit/s`;
}

/**
 * A key's device and speed limits in one short phrase ("3 devices at once (2 in use) · 10 Mbit/s"),
 * "" for none; the count in use is the server's (devicesInUse), when it sent one.
 */
export function limitsText(
  k: {
    deviceLimit?: { devices: number };
    devicesInUse?: number | undefined;
    speedLimit?: { bytesPerSecond: number };
  },
  t: { devicesAtOnce: string; devicesInUse: string },
  locale: string,
): string {
  const n = new Intl.NumberFormat(locale);
  const inUse = k.devicesInUse === undefined ? '' : ` (${n.format(k.devicesInUse)} ${t.devicesInUse})`;
  return [
    k.deviceLimit ? `${n.format(k.deviceLimit.devices)} ${t.devicesAtOnce}${inUse}` : '',
    k.speedLimit ? rate(k.speedLimit.bytesPerSecond, locale) : '',
  ]
    .filter((s) => s !== '')
    .join(' · ');
}

/**
 * A byte count in the largest binary unit it fills, as the CLI and the subscription page print it
 * (src/shared/bytes.ts: "500.00 MiB", "1 B"), digits in the locale's numerals.
 */
export function bytes(n: number, locale: string): string {
  const units = ['GiB', 'MiB', 'KiB'] as const;
  for (let i = 0; i < units.length; i++) {
    const size = 2 ** (30 - 10 * i);
    if (n >= size) return `${fixed2(locale).format(n / size)} ${units[i]}`;
  }
  return `${format(`n0${locale}`, () => new Intl.NumberFormat(locale)).format(n)} B`;
}

/** Two decimals exactly, as toFixed(2), with the locale's numerals (no grouping: "1396.98"). */
const fixed2 = (locale: string): Intl.NumberFormat =>
  format(
    `n2${locale}`,
    () =>
      new Intl.NumberFormat(locale, {
        minimumFractionDigits: 2,
        maximumFractionDigits: 2,
        useGrouping: false,
      }),
  );

export function date(ms: number | undefined, locale: string, withTime = false): string {
  if (ms === undefined) return '';
  return format(
    `d${withTime ? 1 : 0}${locale}`,
    () =>
      new Intl.DateTimeFormat(
        locale,
        withTime ? { dateStyle: 'medium', timeStyle: 'short' } : { dateStyle: 'medium' },
      ),
  ).format(ms);
}

export function stateOf(k: Pick<KeyRow, 'state' | 'enabled'>): KeyState {
  return k.state ?? (k.enabled ? 'active' : 'disabled');
}

export function Badge({ state }: { state: KeyState }) {
  const { t } = useUi();
  return <span class={`badge badge-${state}`}>{t[`st_${state}`]}</span>;
}

export function UsageBar({ used, limit }: { used: number; limit: number | undefined }) {
  const { t, locale } = useUi();
  // A limit of 0 bytes is a key that carries nothing (the Outline API's meaning): "0 B (blocked)".
  const pct = limit === undefined ? 0 : limit === 0 ? 100 : Math.min(100, (used / limit) * 100);
  const fill = useRef<HTMLSpanElement>(null);
  useEffect(() => {
    fill.current?.style.setProperty('width', `${pct}%`);
  }, [pct]);
  return (
    <div class="usage">
      <span class="usage-text">
        {/* Each amount isolated (in the page's direction): a right-to-left page (fa) otherwise
            reorders "0 B / 5.00 GiB" across the slash, parting a number from its Latin unit. */}
        <span class="amount">{bytes(used, locale)}</span> /{' '}
        {limit === undefined ? (
          t.noLimit
        ) : (
          <span class="amount">{`${bytes(limit, locale)}${limit === 0 ? ` (${t.limitBlocked})` : ''}`}</span>
        )}
      </span>
      {limit !== undefined ? (
        <span
          class="bar"
          role="progressbar"
          aria-valuenow={Math.round(pct)}
          aria-valuemin={0}
          aria-valuemax={100}
          aria-label={t.usage}
        >
          <span ref={fill} class={pct >= 100 ? 'fill full' : 'fill'} />
        </span>
      ) : null}
    </div>
  );
}

/** Daily bars; each bar's title gives the day and its bytes. */
export function Chart({ days, label }: { days: UsageDay[]; label: string }) {
  const { locale } = useUi();
  const max = Math.max(1, ...days.map((d) => d.bytes));
  const w = 600;
  const h = 160;
  const bw = w / Math.max(1, days.length);
  const total = days.reduce((s, d) => s + d.bytes, 0);
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${w} ${h + 20}`} role="img" aria-label={`${label}: ${bytes(total, locale)}`}>
        {days.map((d, i) => {
          const bh = d.bytes === 0 ? 0 : Math.max(2, (d.bytes / max) * h);
          return (
            <rect
              key={d.startTimestampMs}
              class="chart-bar"
              data-bytes={d.bytes}
              x={i * bw + 1}
              y={h - bh}
              width={Math.max(1, bw - 2)}
              height={bh}
            >
              <title>{`${date(d.startTimestampMs, locale)}: ${bytes(d.bytes, locale)}`}</title>
            </rect>
          );
        })}
        <line x1="0" y1={h} x2={w} y2={h} class="chart-axis" />
        <text x="0" y={h + 16} class="chart-label">
          {date(days[0]?.startTimestampMs, locale)}
        </text>
        <text x={w} y={h + 16} text-anchor="end" class="chart-label">
          {date(days.at(-1)?.startTimestampMs, locale)}
        </text>
      </svg>
      <figcaption>
        {label}: <strong class="amount">{bytes(total, locale)}</strong> (max{' '}
        <span class="amount">{bytes(max === 1 ? 0 : max, locale)}</span>/day)
      </figcaption>
    </figure>
  );
}

export function Dialog({
  title,
  onClose,
  children,
}: {
  title: string;
  onClose: () => void;
  children: ComponentChildren;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => d?.close();
  }, []);
  return (
    <dialog ref={ref} aria-label={title} onClose={onClose}>
      <h2>{title}</h2>
      {children}
    </dialog>
  );
}

async function writeClipboard(text: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const ta = document.createElement('textarea');
    ta.value = text;
    document.body.append(ta);
    ta.select();
    document.execCommand('copy');
    ta.remove();
  }
}

/** Copies `text`, or what `text()` fetches when clicked (the keys table's links); no button for no text. */
export function CopyButton(props: {
  text: string | undefined | (() => Promise<string | undefined>);
  label: string;
  kind: string;
}) {
  const { text, label, kind } = props;
  const { t, toast } = useUi();
  if (text === undefined) return null;
  const copy = async (): Promise<void> => {
    const value = typeof text === 'string' ? text : await text();
    if (value === undefined) throw new Error('no such link');
    await writeClipboard(value);
  };
  return (
    <button
      type="button"
      class="small"
      dir="auto"
      data-copy={kind}
      onClick={() =>
        void copy().then(
          () => toast(t.copied),
          () => toast(t.error),
        )
      }
    >
      {label}
    </button>
  );
}

/** A QR code drawn in the browser (the qrcode package, loaded on first use) as an SVG image. */
export function Qr({ text, label }: { text: string; label: string }) {
  const [src, setSrc] = useState<string>();
  useEffect(() => {
    let live = true;
    void import('qrcode').then(async (mod) => {
      // A CommonJS module: its functions are on the default export.
      const q = (mod as { default?: typeof mod.default }).default ?? mod;
      const svg = await q.toString(text, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
      if (live) setSrc(`data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`);
    });
    return () => {
      live = false;
    };
  }, [text]);
  return src ? <img class="qr" src={src} alt={label} width={240} height={240} /> : <div class="qr" />;
}
