// Server settings: name, hostname and port for keys, default data limit, dynamic key base; the
// web front and decoy are shown (they are chosen when the server starts).
import { useEffect, useState } from 'preact/hooks';
import { api, type ServerInfo, type ServerStatus } from './api.js';
import { gibField, limitBytes, useUi } from './ui.js';

export function SettingsPage() {
  const { t, toast } = useUi();
  const [server, setServer] = useState<ServerInfo>();
  const [status, setStatus] = useState<ServerStatus>();
  const [form, setForm] = useState({ name: '', hostname: '', port: '', limit: '', base: '' });
  const [error, setError] = useState<string>();
  const load = (): void => {
    void Promise.all([api.server(), api.status()]).then(
      ([s, st]) => {
        setServer(s);
        setStatus(st);
        setForm({
          name: s.name,
          hostname: s.hostnameForAccessKeys,
          port: String(s.portForNewAccessKeys),
          limit: gibField(s.accessKeyDataLimit?.bytes),
          base: s.dynamicKeyBaseUrl ?? '',
        });
      },
      () => setError(t.error),
    );
  };
  useEffect(load, []);
  if (!server || !status) return error ? <p role="alert">{error}</p> : <p>{t.loading}</p>;
  const web = status.transports.find((x) => x.kind === 'websocket');
  const save = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError(undefined);
    try {
      if (form.name !== server.name) await api.setName(form.name);
      if (form.hostname !== server.hostnameForAccessKeys) await api.setHostname(form.hostname);
      if (Number(form.port) !== server.portForNewAccessKeys) await api.setPort(Number(form.port));
      let limit: number | null;
      try {
        limit = limitBytes(form.limit, server.accessKeyDataLimit?.bytes);
      } catch {
        throw new Error(`${t.defaultLimit}: ${form.limit}`);
      }
      if (limit !== (server.accessKeyDataLimit?.bytes ?? null)) await api.setDefaultLimit(limit);
      const base = form.base.trim() === '' ? null : form.base.trim();
      if (base !== (server.dynamicKeyBaseUrl ?? null)) await api.setDynamicBase(base);
      toast(t.saved);
      load();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  const field = (name: keyof typeof form, label: string) => (
    <label class="field">
      <span>{label}</span>
      <input
        type="text"
        value={form[name]}
        onInput={(e) => setForm({ ...form, [name]: (e.target as HTMLInputElement).value })}
      />
    </label>
  );
  return (
    <section>
      <h1>{t.settings}</h1>
      <form class="settings" onSubmit={(e) => void save(e)}>
        {field('name', t.serverName)}
        {field('hostname', t.hostname)}
        {field('port', t.portNew)}
        {field('limit', t.defaultLimit)}
        {field('base', t.dynamicBase)}
        {error && (
          <p role="alert" class="error">
            {error}
          </p>
        )}
        <div class="buttons">
          <button type="submit" class="primary">
            {t.save}
          </button>
        </div>
      </form>
      <h2>{t.webFront}</h2>
      <p>
        {web
          ? `WebSocket${web.tls ? ' + TLS' : ''}: ${web.ports.join(', ')}${web.udp ? ' · UDP' : ''}`
          : t.none}
      </p>
      <p class="muted">{t.webFrontNote}</p>
    </section>
  );
}
