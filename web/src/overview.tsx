import { useEffect, useState } from 'preact/hooks';
import { api, type ServerInfo, type ServerStatus, type UsageDay } from './api.js';
import { Chart, date, useUi } from './ui.js';

/** Traffic over 30 days, key counts, open connections, the fleet's size, the server and its transports. */
export function Overview() {
  const { t, locale } = useUi();
  const [data, setData] = useState<{ server: ServerInfo; status: ServerStatus; days: UsageDay[] }>();
  const [failed, setFailed] = useState(false);
  const load = (): void => {
    void Promise.all([api.server(), api.status(), api.history()]).then(
      ([server, status, h]) => setData({ server, status, days: h.days }),
      () => setFailed(true),
    );
  };
  useEffect(() => {
    load();
    const timer = setInterval(load, 10_000);
    return () => clearInterval(timer);
  }, []);
  if (failed && !data) return <p role="alert">{t.error}</p>;
  if (!data) return <p>{t.loading}</p>;
  const { server, status, days } = data;
  return (
    <section>
      <div class="title-row">
        <h1>{server.name}</h1>
        <button type="button" onClick={load}>
          {t.refresh}
        </button>
      </div>
      <div class="cards">
        <div class="card">
          <div class="card-label">{t.activeKeys}</div>
          <div class="card-value" data-testid="active-keys">
            {status.keys.active} <small>/ {status.keys.total}</small>
          </div>
        </div>
        <div class="card">
          <div class="card-label">{t.openConnections}</div>
          <div class="card-value" data-testid="open-connections">
            {status.openConnections}
          </div>
        </div>
        {status.fleet && (
          <div class="card">
            <div class="card-label">{t.nodes}</div>
            <div class="card-value" data-testid="fleet-nodes">
              <a href="#/nodes">{status.fleet.nodes}</a>
            </div>
          </div>
        )}
        <div class="card">
          <div class="card-label">{t.serverStatus}</div>
          <div class="card-text">
            {server.hostnameForAccessKeys} · {t.running} {date(status.startedTimestampMs, locale, true)}
            <br />
            {t.version} {server.version}
          </div>
        </div>
      </div>
      <h2>{t.traffic30}</h2>
      <Chart days={days} label={t.traffic30} />
      <h2>{t.transports}</h2>
      <ul class="transports">
        {status.transports.map((tr) => (
          <li key={tr.kind}>
            <strong>
              {tr.kind === 'shadowsocks' ? 'Shadowsocks' : `WebSocket${tr.tls ? ' + TLS' : ''}`}
            </strong>{' '}
            {tr.ports.length ? `: ${tr.ports.join(', ')}` : ''}
            {tr.methods?.length ? ` (${tr.methods.join(', ')})` : ''}
            {tr.udp ? ' · UDP' : ''}
          </li>
        ))}
      </ul>
    </section>
  );
}
