// One key: state and usage, its 30-day chart, and each link with a QR code and what to do with it.
import { useEffect, useState } from 'preact/hooks';
import { api, type AccessKey, type KeyUsage, type UsageDay } from './api.js';
import { EditDialog } from './dialogs.js';
import { Badge, Chart, CopyButton, date, limitsText, Qr, rate, UsageBar, useUi } from './ui.js';

export function KeyPage({ id }: { id: string }) {
  const { t, locale } = useUi();
  const [data, setData] = useState<{ key: AccessKey; usage: KeyUsage; days: UsageDay[] }>();
  const [failed, setFailed] = useState(false);
  const [editing, setEditing] = useState(false);
  const load = (): void => {
    void Promise.all([api.key(id), api.usage(id), api.history(id)]).then(
      ([key, usage, h]) => setData({ key, usage, days: h.days }),
      () => setFailed(true),
    );
  };
  useEffect(load, [id]);
  if (failed && !data) return <p role="alert">{t.error}</p>;
  if (!data) return <p>{t.loading}</p>;
  const { key, usage, days } = data;
  const links = [
    { kind: 'sub', text: key.subscriptionUrl, label: t.copySub, help: t.inst_sub },
    { kind: 'dynamic', text: key.dynamicAccessUrl, label: t.copyDynamic, help: t.inst_dynamic },
    { kind: 'ss', text: key.accessUrl, label: t.copySs, help: t.inst_ss },
  ];
  return (
    <section>
      <p>
        <a href="#/keys">← {t.back}</a>
      </p>
      <div class="title-row">
        <h1>
          {key.name || `#${key.id}`} <Badge state={usage.state} />
        </h1>
        <div>
          <button type="button" onClick={() => void api.setEnabled(key.id, !key.enabled).then(load)}>
            {key.enabled ? t.disable : t.enable}
          </button>{' '}
          <button type="button" onClick={() => setEditing(true)}>
            {t.edit}
          </button>
        </div>
      </div>
      <div class="cards">
        <div class="card">
          <div class="card-label">{t.usage}</div>
          <UsageBar used={usage.dataUsed.bytes} limit={usage.dataLimit?.bytes} />
          <small class="muted">
            {t[`p_${usage.dataLimitPeriod}`]}
            {usage.nextResetTimestampMs !== null
              ? ` · ${t.resets} ${date(usage.nextResetTimestampMs, locale)}`
              : ''}
          </small>
        </div>
        <div class="card">
          <div class="card-label">{t.expiry}</div>
          <div class="card-text">{key.expiresAt ? date(Date.parse(key.expiresAt), locale) : t.never}</div>
        </div>
        <div class="card" data-card="device-limit">
          <div class="card-label">{t.deviceLimit}</div>
          <div class="card-text">
            {key.deviceLimit
              ? limitsText({ deviceLimit: key.deviceLimit, devicesInUse: key.devicesInUse }, t, locale)
              : t.noLimit}
          </div>
        </div>
        <div class="card" data-card="speed-limit">
          <div class="card-label">{t.speedLimit}</div>
          <div class="card-text">
            {key.speedLimit ? rate(key.speedLimit.bytesPerSecond, locale) : t.noLimit}
          </div>
        </div>
        <div class="card">
          <div class="card-label">{t.openConnections}</div>
          <div class="card-value">{usage.openConnections}</div>
        </div>
        <div class="card">
          <div class="card-label">{t.lastSeen}</div>
          <div class="card-text">
            {key.lastTrafficSeenTimestampMs ? date(key.lastTrafficSeenTimestampMs, locale, true) : t.never}
          </div>
        </div>
      </div>
      <h2>{t.keyUsage}</h2>
      <Chart days={days} label={t.keyUsage} />
      <h2>{t.links}</h2>
      <div class="links">
        {links.map((l) =>
          l.text === undefined ? null : (
            <div class="link-card" key={l.kind} data-link={l.kind}>
              <Qr text={l.text} label={`${t.qr}: ${l.label}`} />
              <div>
                <p>{l.help}</p>
                <p class="mono wrap">{l.text}</p>
                <CopyButton text={l.text} label={l.label} kind={l.kind} />
              </div>
            </div>
          ),
        )}
      </div>
      {editing && (
        <EditDialog
          k={key}
          onClose={() => setEditing(false)}
          onDone={() => {
            setEditing(false);
            load();
          }}
        />
      )}
    </section>
  );
}
