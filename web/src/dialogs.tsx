// The dialogs the keys table and the key page share: create N keys, edit one key, show a QR
// code, confirm a deletion, extend expiries; and a one-field form (the nodes page's block and
// add-address).
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { api, LIMIT_PERIODS, type KeyRow, type LimitPeriod } from './api.js';
import { deviceCount, Dialog, gibField, limitBytes, mbitField, Qr, speedBytes, useUi } from './ui.js';

function dateOrNull(text: string): number | null {
  if (text.trim() === '') return null;
  const ms = Date.parse(`${text}T23:59:59Z`);
  if (!Number.isFinite(ms)) throw new Error(`not a date: ${text}`);
  return ms;
}

/**
 * A warning that asks for a second press: the first submit that meets `warnings` shows them
 * (as the form's error) and stops; pressing again with the same warnings goes ahead.
 */
function useSecondPress(): (warnings: readonly (string | false)[]) => void {
  const [shown, setShown] = useState('');
  return (warnings) => {
    const text = warnings.filter((w): w is string => Boolean(w)).join(' ');
    if (text === '' || text === shown) return;
    setShown(text);
    throw new Error(text);
  };
}

function Field({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <label class="field">
      <span>{label}</span>
      {children}
    </label>
  );
}

function Buttons({ ok, onCancel, busy }: { ok: string; onCancel: () => void; busy: boolean }) {
  const { t } = useUi();
  return (
    <div class="buttons">
      <button type="button" onClick={onCancel}>
        {t.cancel}
      </button>
      <button type="submit" class="primary" disabled={busy}>
        {ok}
      </button>
    </div>
  );
}

/** A dialog holding one form: its fields, the error of the last try, Cancel and the action. */
function FormDialog(props: {
  title: string;
  onClose: () => void;
  onSubmit: (e: Event) => void;
  ok: string;
  busy: boolean;
  error: string | undefined;
  children: ComponentChildren;
}) {
  return (
    <Dialog title={props.title} onClose={props.onClose}>
      <form onSubmit={props.onSubmit}>
        {props.children}
        {props.error && (
          <p role="alert" class="error">
            {props.error}
          </p>
        )}
        <Buttons ok={props.ok} onCancel={props.onClose} busy={props.busy} />
      </form>
    </Dialog>
  );
}

/** Run a form's action, show its error in the dialog, close it when done. */
function useAction(
  done: () => void,
): [boolean, string | undefined, (fn: () => Promise<unknown>) => (e: Event) => void] {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const run = (fn: () => Promise<unknown>) => (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    fn().then(
      () => {
        setBusy(false);
        done();
      },
      (err: unknown) => {
        setBusy(false);
        setError(err instanceof Error ? err.message : String(err));
      },
    );
  };
  return [busy, error, run];
}

function PeriodSelect({ value, onChange }: { value: LimitPeriod; onChange: (p: LimitPeriod) => void }) {
  const { t } = useUi();
  return (
    <select value={value} onChange={(e) => onChange((e.target as HTMLSelectElement).value as LimitPeriod)}>
      {LIMIT_PERIODS.map((p) => (
        <option key={p} value={p}>
          {t[`p_${p}`]}
        </option>
      ))}
    </select>
  );
}

const val = (e: Event): string => (e.target as HTMLInputElement).value;

/** The fields a key is created and edited with (strings as typed). */
interface KeyForm {
  name: string;
  limit: string;
  period: LimitPeriod;
  expiry: string;
  /** Device limit as typed (empty: none). */
  devices: string;
  /** Speed limit in Mbit/s as typed (empty: none). */
  speed: string;
}

/** Name, limit in GiB, limit period and expiry date: the create and edit dialogs' shared fields. */
function KeyFields({ v, set, nameMax }: { v: KeyForm; set: (p: Partial<KeyForm>) => void; nameMax: number }) {
  const { t } = useUi();
  return (
    <>
      <Field label={t.name}>
        <input value={v.name} maxLength={nameMax} onInput={(e) => set({ name: val(e) })} />
      </Field>
      <Field label={t.limitGb}>
        <input
          inputMode="decimal"
          value={v.limit}
          onInput={(e) => set({ limit: val(e) })}
          data-field="limit"
        />
      </Field>
      <Field label={t.period}>
        <PeriodSelect value={v.period} onChange={(period) => set({ period })} />
      </Field>
      <Field label={t.expiresAt}>
        <input type="date" value={v.expiry} onInput={(e) => set({ expiry: val(e) })} />
      </Field>
      <Field label={t.deviceLimitField}>
        <input
          inputMode="numeric"
          value={v.devices}
          onInput={(e) => set({ devices: val(e) })}
          data-field="devices"
        />
      </Field>
      <Field label={t.speedLimitField}>
        <input
          inputMode="decimal"
          value={v.speed}
          onInput={(e) => set({ speed: val(e) })}
          data-field="speed"
        />
      </Field>
    </>
  );
}

function useKeyForm(initial: KeyForm): [KeyForm, (p: Partial<KeyForm>) => void] {
  const [v, setV] = useState(initial);
  return [v, (p) => setV((old) => ({ ...old, ...p }))];
}

export function CreateDialog({ onClose, onDone }: { onClose: () => void; onDone: () => void }) {
  const { t } = useUi();
  const [count, setCount] = useState('1');
  const [v, set] = useKeyForm({
    name: '',
    limit: '',
    period: 'rolling30d',
    expiry: '',
    devices: '',
    speed: '',
  });
  const [busy, error, run] = useAction(onDone);
  const warn = useSecondPress();
  const submit = run(async () => {
    const n = Number(count);
    if (!Number.isInteger(n) || n < 1 || n > 1000) throw new Error(`${t.count}: 1–1000`);
    const bytes = limitBytes(v.limit, undefined);
    const exp = dateOrNull(v.expiry);
    const devices = deviceCount(v.devices, t.deviceLimit);
    const speed = speedBytes(v.speed, undefined, t.speedLimit);
    warn([
      bytes === 0 && t.zeroLimitWarn.replace('{disable}', t.disable),
      exp !== null && exp < Date.now() && t.pastExpiryWarn,
    ]);
    const body: Record<string, unknown> = {
      ...(v.name.trim() ? { name: v.name.trim() } : {}),
      ...(bytes !== null ? { limit: { bytes }, dataLimitPeriod: v.period } : {}),
      // A past one passed the second press above (the API refuses it without allowPastExpiry).
      ...(exp !== null ? { expiresAt: exp, allowPastExpiry: true } : {}),
      ...(devices !== null ? { deviceLimit: { devices } } : {}),
      ...(speed !== null ? { speedLimit: { bytesPerSecond: speed } } : {}),
    };
    if (n === 1) await api.create(body);
    else await api.createMany({ ...body, count: n });
  });
  return (
    <FormDialog
      title={t.createKeys}
      onClose={onClose}
      onSubmit={submit}
      ok={t.create}
      busy={busy}
      error={error}
    >
      <Field label={t.count}>
        <input type="number" min={1} max={1000} value={count} onInput={(e) => setCount(val(e))} required />
      </Field>
      <KeyFields v={v} set={set} nameMax={90} />
    </FormDialog>
  );
}

export function EditDialog({ k, onClose, onDone }: { k: KeyRow; onClose: () => void; onDone: () => void }) {
  const { t } = useUi();
  const [v, set] = useKeyForm({
    name: k.name,
    limit: gibField(k.dataLimit?.bytes),
    period: k.dataLimitPeriod ?? 'rolling30d',
    expiry: k.expiresAt ? k.expiresAt.slice(0, 10) : '',
    devices: k.deviceLimit ? String(k.deviceLimit.devices) : '',
    speed: mbitField(k.speedLimit?.bytesPerSecond),
  });
  const [prefix, setPrefix] = useState(k.prefix ?? '');
  const [busy, error, run] = useAction(onDone);
  const warn = useSecondPress();
  const submit = run(async () => {
    const bytes = limitBytes(v.limit, k.dataLimit?.bytes);
    const exp = dateOrNull(v.expiry);
    const devices = deviceCount(v.devices, t.deviceLimit);
    const speed = speedBytes(v.speed, k.speedLimit?.bytesPerSecond, t.speedLimit);
    const oldExp = k.expiresAt ? k.expiresAt.slice(0, 10) : '';
    // Only what this edit changes: a key already limited to 0 or expired is saved without a word.
    warn([
      bytes === 0 && k.dataLimit?.bytes !== 0 && t.zeroLimitWarn.replace('{disable}', t.disable),
      v.expiry !== oldExp && exp !== null && exp < Date.now() && t.pastExpiryWarn,
    ]);
    if (v.name !== k.name && v.name.trim()) await api.rename(k.id, v.name.trim());
    if (
      bytes !== (k.dataLimit?.bytes ?? null) ||
      (bytes !== null && v.period !== (k.dataLimitPeriod ?? 'rolling30d'))
    )
      await api.setLimit(k.id, bytes, v.period);
    if (v.expiry !== oldExp) await api.setExpiry(k.id, exp);
    if (devices !== (k.deviceLimit?.devices ?? null)) await api.setDeviceLimit(k.id, devices);
    if (speed !== (k.speedLimit?.bytesPerSecond ?? null)) await api.setSpeedLimit(k.id, speed);
    if (k.prefix !== undefined && prefix !== k.prefix) await api.setPrefix(k.id, prefix.trim() || 'auto');
  });
  return (
    <FormDialog
      title={`${t.edit}: ${k.name || k.id}`}
      onClose={onClose}
      onSubmit={submit}
      ok={t.save}
      busy={busy}
      error={error}
    >
      <KeyFields v={v} set={set} nameMax={256} />
      {k.prefix !== undefined && (
        <Field label={t.prefix}>
          <input value={prefix} maxLength={200} onInput={(e) => setPrefix(val(e))} />
        </Field>
      )}
    </FormDialog>
  );
}

export function QrDialog({ title, text, onClose }: { title: string; text: string; onClose: () => void }) {
  const { t } = useUi();
  return (
    <Dialog title={title} onClose={onClose}>
      <Qr text={text} label={title} />
      <p class="mono wrap">{text}</p>
      <div class="buttons">
        <button type="button" onClick={onClose}>
          {t.close}
        </button>
      </div>
    </Dialog>
  );
}

export function ConfirmDialog(props: {
  title: string;
  text: string;
  ok: string;
  onClose: () => void;
  action: () => Promise<unknown>;
}) {
  const [busy, error, run] = useAction(props.onClose);
  return (
    <FormDialog
      title={props.title}
      onClose={props.onClose}
      onSubmit={run(props.action)}
      ok={props.ok}
      busy={busy}
      error={error}
    >
      <p>{props.text}</p>
    </FormDialog>
  );
}

/** One text field and an action taking its value (block with a reason, add an address). */
export function TextDialog(props: {
  title: string;
  label: string;
  ok: string;
  required: boolean;
  onClose: () => void;
  action: (value: string) => Promise<unknown>;
}) {
  const [value, setValue] = useState('');
  const [busy, error, run] = useAction(props.onClose);
  return (
    <FormDialog
      title={props.title}
      onClose={props.onClose}
      onSubmit={run(() => props.action(value))}
      ok={props.ok}
      busy={busy}
      error={error}
    >
      <Field label={props.label}>
        <input type="text" value={value} onInput={(e) => setValue(val(e))} required={props.required} />
      </Field>
    </FormDialog>
  );
}

export function ExtendDialog({ keys, onClose }: { keys: KeyRow[]; onClose: () => void }) {
  const { t } = useUi();
  const [days, setDays] = useState('30');
  const [busy, error, run] = useAction(onClose);
  const submit = run(async () => {
    const n = Number(days);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${t.days}: > 0`);
    // The server adds the days to each expiry (from now when unset or past), all or nothing.
    await api.bulk(
      'extend',
      keys.map((k) => k.id),
      n,
    );
  });
  return (
    <FormDialog
      title={`${t.extendExpiry} (${keys.length})`}
      onClose={onClose}
      onSubmit={submit}
      ok={t.extendExpiry}
      busy={busy}
      error={error}
    >
      <Field label={t.days}>
        <input type="number" min={1} value={days} onInput={(e) => setDays(val(e))} required />
      </Field>
    </FormDialog>
  );
}
