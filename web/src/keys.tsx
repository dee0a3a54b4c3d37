// The keys table: status, usage against the limit, expiry, last seen and per-key actions;
// search, filter by state, sort, pages of 100 rows; bulk create, extend, enable/disable, delete.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, type BulkAction, type KeyRow, type KeyState } from './api.js';
import { ConfirmDialog, CreateDialog, EditDialog, ExtendDialog, QrDialog } from './dialogs.js';
import { Badge, CopyButton, date, limitsText, stateOf, UsageBar, useUi } from './ui.js';
import { countText } from './i18n.js';

const PAGE = 100;
/** One collator for every comparison: localeCompare with options builds one per call (slow on 5,000 keys). */
const ids = new Intl.Collator('en', { numeric: true });
type Sort = 'name' | 'usage' | 'expiry' | 'lastSeen' | 'created';
type Modal =
  | { kind: 'create' }
  | { kind: 'edit'; key: KeyRow }
  | { kind: 'qr'; title: string; text: string }
  | { kind: 'delete'; keys: KeyRow[] }
  | { kind: 'extend'; keys: KeyRow[] };

const STATES: readonly KeyState[] = ['active', 'over_limit', 'expired', 'disabled'];

function sortValue(k: KeyRow, by: Sort): number | string {
  switch (by) {
    case 'name':
      return (k.name || k.id).toLowerCase();
    case 'usage':
      return -(k.dataUsed?.bytes ?? 0);
    case 'expiry':
      return k.expiresAt ? Date.parse(k.expiresAt) : Number.MAX_SAFE_INTEGER;
    case 'lastSeen':
      return -(k.lastTrafficSeenTimestampMs ?? 0);
    case 'created':
      return k.createdTimestampMs ?? 0;
  }
}

export function KeysPage() {
  const { t, locale, toast } = useUi();
  const [keys, setKeys] = useState<KeyRow[]>();
  const [defaultLimit, setDefaultLimit] = useState<number>();
  const [failed, setFailed] = useState(false);
  const [query, setQuery] = useState('');
  const [only, setOnly] = useState<KeyState | ''>('');
  const [sort, setSort] = useState<Sort>('created');
  const [page, setPage] = useState(0);
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const [modal, setModal] = useState<Modal>();

  const load = (): void => {
    void Promise.all([api.keys(), api.server()]).then(
      ([list, server]) => {
        setKeys(list);
        setDefaultLimit(server.accessKeyDataLimit?.bytes);
      },
      () => setFailed(true),
    );
  };
  useEffect(() => {
    load();
    const timer = setInterval(load, 10_000);
    return () => clearInterval(timer);
  }, []);

  // Sorted once per listing or sort order (with each key's search text), not per keystroke: the
  // filter then keeps that order and only the visible page of 100 rows is rendered.
  const sorted = useMemo(() => {
    const list = (keys ?? []).map((k) => ({
      k,
      by: sortValue(k, sort),
      text: `${k.name}\n${k.id}`.toLowerCase(),
    }));
    list.sort((a, b) => (a.by < b.by ? -1 : a.by > b.by ? 1 : ids.compare(a.k.id, b.k.id)));
    return list;
  }, [keys, sort]);
  const shown = useMemo(() => {
    const q = query.trim().toLowerCase();
    if (!q && !only) return sorted.map((e) => e.k);
    return sorted
      .filter((e) => (!only || stateOf(e.k) === only) && (!q || e.text.includes(q)))
      .map((e) => e.k);
  }, [sorted, query, only]);
  const pages = Math.max(1, Math.ceil(shown.length / PAGE));
  const at = Math.min(page, pages - 1);
  const rows = shown.slice(at * PAGE, at * PAGE + PAGE);
  const chosen = useMemo(() => (keys ?? []).filter((k) => selected.has(k.id)), [keys, selected]);

  const closeAndLoad = (): void => {
    setModal(undefined);
    load();
  };
  const toggle = (id: string): void => {
    const next = new Set(selected);
    if (!next.delete(id)) next.add(id);
    setSelected(next);
  };
  const bulk = (action: BulkAction): void => {
    void api
      .bulk(
        action,
        chosen.map((k) => k.id),
      )
      .then(
        () => (setSelected(new Set()), load()),
        () => (toast(t.error), load()),
      );
  };
  /** A row's links are not in the listing: fetched with the key when used. */
  const link = (k: KeyRow, name: 'accessUrl' | 'dynamicAccessUrl' | 'subscriptionUrl') => () =>
    api.key(k.id).then((full) => full[name]);
  const showQr = (k: KeyRow): void => {
    void api.key(k.id).then(
      (full) =>
        setModal({
          kind: 'qr',
          title: `${t.qr}: ${k.name || k.id}`,
          text: full.subscriptionUrl ?? full.accessUrl,
        }),
      () => toast(t.error),
    );
  };

  if (failed && !keys) return <p role="alert">{t.error}</p>;
  if (!keys) return <p>{t.loading}</p>;
  return (
    <section>
      <div class="title-row">
        <h1>
          {t.keys} <small>({countText(t.keysCount, keys.length, locale)})</small>
        </h1>
        <button type="button" class="primary" onClick={() => setModal({ kind: 'create' })}>
          {t.createKeys}
        </button>
      </div>
      <div class="toolbar">
        <input
          type="search"
          placeholder={t.search}
          aria-label={t.search}
          value={query}
          onInput={(e) => (setQuery((e.target as HTMLInputElement).value), setPage(0))}
        />
        <select
          aria-label={t.status}
          value={only}
          onChange={(e) => (setOnly((e.target as HTMLSelectElement).value as KeyState | ''), setPage(0))}
        >
          <option value="">{t.allStates}</option>
          {STATES.map((s) => (
            <option key={s} value={s}>
              {t[`st_${s}`]}
            </option>
          ))}
        </select>
        <select
          aria-label={t.sortBy}
          value={sort}
          onChange={(e) => setSort((e.target as HTMLSelectElement).value as Sort)}
        >
          <option value="created">{t.sortBy}: #</option>
          <option value="name">
            {t.sortBy}: {t.name}
          </option>
          <option value="usage">
            {t.sortBy}: {t.usage}
          </option>
          <option value="expiry">
            {t.sortBy}: {t.expiry}
          </option>
          <option value="lastSeen">
            {t.sortBy}: {t.lastSeen}
          </option>
        </select>
        <button type="button" onClick={load}>
          {t.refresh}
        </button>
      </div>
      {chosen.length > 0 && (
        <div class="toolbar bulk" role="group" aria-label={t.selected}>
          <span>
            {chosen.length} {t.selected}
          </span>
          <button type="button" onClick={() => setModal({ kind: 'extend', keys: chosen })}>
            {t.extendExpiry}
          </button>
          <button type="button" data-bulk="enable" onClick={() => bulk('enable')}>
            {t.enable}
          </button>
          <button type="button" data-bulk="disable" onClick={() => bulk('disable')}>
            {t.disable}
          </button>
          <button type="button" class="danger" onClick={() => setModal({ kind: 'delete', keys: chosen })}>
            {t.delete}
          </button>
        </div>
      )}
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">
                <input
                  type="checkbox"
                  aria-label={t.selectAll}
                  checked={rows.length > 0 && rows.every((k) => selected.has(k.id))}
                  onChange={(e) =>
                    setSelected(
                      (e.target as HTMLInputElement).checked
                        ? new Set([...selected, ...rows.map((k) => k.id)])
                        : new Set(),
                    )
                  }
                />
              </th>
              <th scope="col">{t.name}</th>
              <th scope="col">{t.status}</th>
              <th scope="col">{t.usage}</th>
              <th scope="col">{t.limits}</th>
              <th scope="col">{t.expiry}</th>
              <th scope="col">{t.lastSeen}</th>
              <th scope="col">{t.actions}</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((k) => (
              <tr key={k.id} data-key-id={k.id}>
                <td>
                  <input
                    type="checkbox"
                    aria-label={`${t.select} ${k.name || k.id}`}
                    checked={selected.has(k.id)}
                    onChange={() => toggle(k.id)}
                  />
                </td>
                <td>
                  <a href={`#/keys/${encodeURIComponent(k.id)}`}>{k.name || `#${k.id}`}</a>
                </td>
                <td>
                  <Badge state={stateOf(k)} />
                </td>
                <td>
                  <UsageBar used={k.dataUsed?.bytes ?? 0} limit={k.dataLimit?.bytes ?? defaultLimit} />
                  {(k.dataLimit || defaultLimit !== undefined) && (
                    <small class="muted">{t[`p_${k.dataLimitPeriod ?? 'rolling30d'}`]}</small>
                  )}
                </td>
                <td class="limits" data-limits>
                  {limitsText(k, t, locale) || t.noLimit}
                </td>
                <td>{k.expiresAt ? date(Date.parse(k.expiresAt), locale) : t.never}</td>
                <td>
                  {k.lastTrafficSeenTimestampMs ? date(k.lastTrafficSeenTimestampMs, locale, true) : t.never}
                </td>
                <td>
                  <div class="actions">
                    <CopyButton text={link(k, 'accessUrl')} label="ss://" kind="ss" />
                    <CopyButton text={link(k, 'dynamicAccessUrl')} label="ssconf://" kind="dynamic" />
                    <CopyButton text={link(k, 'subscriptionUrl')} label={t.copySub} kind="sub" />
                    <button type="button" class="small" data-qr="sub" onClick={() => showQr(k)}>
                      {t.qr}
                    </button>
                    <button
                      type="button"
                      class="small"
                      data-action="toggle"
                      onClick={() => void api.setEnabled(k.id, !k.enabled).then(load)}
                    >
                      {k.enabled ? t.disable : t.enable}
                    </button>
                    <button
                      type="button"
                      class="small"
                      data-action="edit"
                      onClick={() => setModal({ kind: 'edit', key: k })}
                    >
                      {t.edit}
                    </button>
                    <button
                      type="button"
                      class="small danger"
                      data-action="delete"
                      onClick={() => setModal({ kind: 'delete', keys: [k] })}
                    >
                      {t.delete}
                    </button>
                  </div>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {rows.length === 0 && <p>{t.noKeys}</p>}
      </div>
      {pages > 1 && (
        <div class="pager">
          <button type="button" disabled={at === 0} onClick={() => setPage(at - 1)}>
            {t.prev}
          </button>
          <span>
            {t.page} {at + 1} / {pages}
          </span>
          <button type="button" disabled={at >= pages - 1} onClick={() => setPage(at + 1)}>
            {t.next}
          </button>
        </div>
      )}
      {modal?.kind === 'create' && <CreateDialog onClose={() => setModal(undefined)} onDone={closeAndLoad} />}
      {modal?.kind === 'edit' && (
        <EditDialog k={modal.key} onClose={() => setModal(undefined)} onDone={closeAndLoad} />
      )}
      {modal?.kind === 'qr' && (
        <QrDialog title={modal.title} text={modal.text} onClose={() => setModal(undefined)} />
      )}
      {modal?.kind === 'extend' && <ExtendDialog keys={modal.keys} onClose={closeAndLoad} />}
      {modal?.kind === 'delete' && (
        <ConfirmDialog
          title={`${t.delete} (${modal.keys.length})`}
          text={t.confirmDelete}
          ok={t.delete}
          onClose={closeAndLoad}
          action={async () => {
            await api.bulk(
              'delete',
              modal.keys.map((k) => k.id),
            );
            setSelected(new Set());
          }}
        />
      )}
    </section>
  );
}
