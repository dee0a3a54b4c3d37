// The operator's dashboard: a shell (navigation, language switcher, notices) and five pages
// chosen by the URL's hash (#/, #/keys, #/keys/ID, #/nodes, #/settings), so the server serves one page.
import { render } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { api, type ServerStatus } from './api.js';
import { applyLang, initialLang, LANGS, localeOf, type Lang } from './i18n.js';
import { KeyPage } from './key-page.js';
import { KeysPage } from './keys.js';
import { NodesPage } from './nodes.js';
import { Overview } from './overview.js';
import { SettingsPage } from './settings.js';
import { UiContext } from './ui.js';
import './style.css';

function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = (): void => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function App() {
  const [lang, setLang] = useState<Lang>(initialLang);
  const [t, setT] = useState(() => applyLang(lang, false));
  const [note, setNote] = useState<string>();
  const [status, setStatus] = useState<ServerStatus>();
  const hash = useHash();
  const toast = useCallback((text: string) => {
    setNote(text);
    setTimeout(() => setNote((n) => (n === text ? undefined : n)), 2500);
  }, []);
  useEffect(() => {
    void api.status().then(setStatus, () => undefined);
  }, []);
  useEffect(() => {
    document.title = `Ladder · ${t.overview}`;
  }, [t]);
  const choose = (l: Lang): void => {
    setLang(l);
    setT(applyLang(l, true));
  };
  const route = hash.replace(/^#\/?/, '');
  const keyId = /^keys\/(.+)$/.exec(route)?.[1];
  const page = keyId !== undefined ? 'keys' : route || 'overview';
  const nav = [
    ['overview', '#/', t.overview],
    ['keys', '#/keys', t.keys],
    // The fleet's nodes page appears when the server reports a fleet (a `--node` server).
    ...(status?.fleet ? [['nodes', '#/nodes', t.nodes]] : []),
    ['settings', '#/settings', t.settings],
  ] as const;
  return (
    <UiContext.Provider value={{ t, locale: localeOf(lang), toast }}>
      <header>
        <span class="brand">Ladder</span>
        <nav aria-label="main">
          {nav.map(([id, href, label]) => (
            <a key={id} href={href} aria-current={page === id ? 'page' : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <label class="lang">
          <span class="sr-only">{t.language}</span>
          <select
            value={lang}
            onChange={(e) => choose((e.target as HTMLSelectElement).value as Lang)}
            aria-label={t.language}
          >
            {LANGS.map((l) => (
              <option key={l.code} value={l.code} lang={l.tag}>
                {l.label}
              </option>
            ))}
          </select>
        </label>
      </header>
      <main>
        {keyId !== undefined ? (
          <KeyPage id={decodeURIComponent(keyId)} />
        ) : page === 'keys' ? (
          <KeysPage />
        ) : page === 'nodes' ? (
          <NodesPage />
        ) : page === 'settings' ? (
          <SettingsPage />
        ) : (
          <Overview />
        )}
      </main>
      <div class="toast" role="status" aria-live="polite">
        {note}
      </div>
    </UiContext.Provider>
  );
}

render(<App />, document.getElementById('app')!);
