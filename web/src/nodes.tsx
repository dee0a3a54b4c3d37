// The fleet's nodes (shown when GET /server/status reports a fleet): state badge, whether keys
// list the node, heartbeat age, addresses, ports and transports, keys version, version; drain,
// block (with a reason), unblock, add an address, remove a node that is down. When keys list no
// node (every one blocked, suspected or down), an alert says which hostname they give instead.
import { useEffect, useState } from 'preact/hooks';
import { api, type Fleet, type FleetNode } from './api.js';
import { ConfirmDialog, TextDialog } from './dialogs.js';
import { useUi } from './ui.js';

type Modal = { kind: 'block' | 'address' | 'remove'; node: FleetNode };

/** "3 seconds ago" in the page's language (seconds, then minutes, hours, days). */
function age(ms: number, locale: string): string {
  const rtf = new Intl.RelativeTimeFormat(locale, { numeric: 'always', style: 'short' });
  const s = ms / 1000;
  if (s < 120) return rtf.format(-Math.round(s), 'second');
  if (s < 7200) return rtf.format(-Math.round(s / 60), 'minute');
  if (s < 172_800) return rtf.format(-Math.round(s / 3600), 'hour');
  return rtf.format(-Math.round(s / 86_400), 'day');
}

/** "Shadowsocks 443 · WebSocket + TLS 8443" (a web front's secret path is not shown). */
function transports(n: FleetNode): string {
  const list = n.transports.map((x) =>
    x.type === 'shadowsocks'
      ? `Shadowsocks ${x.port}${x.udp ? ' (UDP)' : ''}`
      : x.type === 'shadowtls'
        ? `ShadowTLS ${x.port}`
        : `WebSocket${x.tls ? ' + TLS' : ''} ${x.port}`,
  );
  return list.length ? list.join(' · ') : `Shadowsocks ${n.port}`;
}

const button = (label: string, onClick: () => void, cls = 'small') => (
  <button type="button" class={cls} onClick={onClick}>
    {label}
  </button>
);

export function NodesPage() {
  const { t, locale, toast } = useUi();
  const [fleet, setFleet] = useState<Fleet>();
  const [failed, setFailed] = useState(false);
  const [modal, setModal] = useState<Modal>();
  const load = (): void => {
    void api.nodes().then(
      (f) => {
        setFleet(f);
        setFailed(false);
      },
      () => setFailed(true),
    );
  };
  useEffect(() => {
    load();
    // Heartbeat ages move every 2 s; a few seconds' lag is fine.
    const timer = setInterval(load, 3000);
    return () => clearInterval(timer);
  }, []);
  const act = (fn: () => Promise<unknown>): void => {
    void fn().then(load, (err: unknown) => toast(err instanceof Error ? err.message : t.error));
  };
  const close = (): void => {
    setModal(undefined);
    load();
  };
  if (failed && !fleet) return <p role="alert">{t.error}</p>;
  if (!fleet) return <p>{t.loading}</p>;
  return (
    <section>
      <div class="title-row">
        <h1>{t.nodes}</h1>
        <button type="button" onClick={load}>
          {t.refresh}
        </button>
      </div>
      <p class="muted">{t.nodesNote}</p>
      {fleet.keysFallback && (
        <p role="alert" class="error" data-testid="keys-fallback">
          {t.keysFallback.split('{host}').map((part, i) => (
            <span key={i}>
              {i > 0 && (
                <bdi dir="ltr" class="mono">
                  {fleet.keysFallback!.hostnameForAccessKeys}
                </bdi>
              )}
              {part}
            </span>
          ))}
        </p>
      )}
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              {[
                t.name,
                t.status,
                t.inKeys,
                t.heartbeat,
                t.addresses,
                t.transportsCol,
                t.keysVersion,
                t.version,
                t.actions,
              ].map((h) => (
                <th key={h} scope="col">
                  {h}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {fleet.nodes.length === 0 && (
              <tr>
                <td colSpan={9}>{t.noNodes}</td>
              </tr>
            )}
            {fleet.nodes.map((n) => (
              <tr key={n.name} data-node={n.name}>
                <td>
                  <strong dir="auto">{n.name}</strong>
                  {n.name === fleet.self.name && <small> ({t.thisNode})</small>}
                </td>
                <td>
                  <span class={`badge badge-${n.status}`} data-status={n.status}>
                    {t[`ns_${n.status}`]}
                  </span>
                  {n.down && n.state !== 'active' && <small> ({t[`ns_${n.state}`]})</small>}
                  {n.stateReason && (
                    <div class="muted" dir="auto">
                      {n.stateReason}
                    </div>
                  )}
                </td>
                <td data-listed={fleet.listed.includes(n.name)}>
                  {fleet.listed.includes(n.name) ? t.yes : t.no}
                </td>
                <td>{n.heartbeatAgeMs === undefined ? t.stopped : age(n.heartbeatAgeMs, locale)}</td>
                <td class="mono" dir="ltr">
                  {n.addresses.map((a) => (
                    <div key={a}>{a}</div>
                  ))}
                </td>
                <td dir="ltr">{transports(n)}</td>
                <td>
                  {n.keysVersion}
                  {n.keysVersion < fleet.keysVersion && <small> / {fleet.keysVersion}</small>}
                </td>
                <td>{n.version}</td>
                <td>
                  <div class="actions">
                    {n.state === 'active' && button(t.drain, () => act(() => api.drainNode(n.name)))}
                    {n.state !== 'blocked' && button(t.block, () => setModal({ kind: 'block', node: n }))}
                    {n.state !== 'active' && button(t.unblock, () => act(() => api.unblockNode(n.name)))}
                    {button(t.addAddress, () => setModal({ kind: 'address', node: n }))}
                    {n.down && button(t.remove, () => setModal({ kind: 'remove', node: n }), 'small danger')}
                  </div>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {modal?.kind === 'block' && (
        <TextDialog
          title={`${t.block}: ${modal.node.name}`}
          label={t.reason}
          ok={t.block}
          required={false}
          onClose={close}
          action={(reason) => api.blockNode(modal.node.name, reason)}
        />
      )}
      {modal?.kind === 'address' && (
        <TextDialog
          title={`${t.addAddress}: ${modal.node.name}`}
          label={t.address}
          ok={t.addAddress}
          required
          onClose={close}
          action={(address) => api.addNodeAddress(modal.node.name, address.trim())}
        />
      )}
      {modal?.kind === 'remove' && (
        <ConfirmDialog
          title={`${t.remove}: ${modal.node.name}`}
          text={t.confirmRemove}
          ok={t.remove}
          onClose={close}
          action={() => api.removeNode(modal.node.name)}
        />
      )}
    </section>
  );
}
