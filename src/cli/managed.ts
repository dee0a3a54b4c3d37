import { join, resolve } from 'node:path';
import { networkInterfaces } from 'node:os';
import type { ApiAddress, ShadowTlsEndpoint, WebEndpoint } from '../api/index.js';
import type { MetricsServer } from '../metrics/index.js';
import { processDeviceCounts, speedLimitStats, type DataPlaneOptions } from '../server/index.js';
import { createLogger, type Logger } from '../shared/logger.js';
import { bindErrorCode, explainBindError } from '../shared/listen.js';
import type { CachedKey, KeyEnforcer, KeyStatus, KyselyStore, StoreLocation } from '../store/index.js';
import {
  DEFAULT_DATA_DIR,
  DEFAULT_IDLE_SECONDS,
  DEFAULT_METHOD,
  DEFAULT_METRICS_PORT,
  DEFAULT_SERVER_PORT,
} from '../config/defaults.js';
import { managedFlagsSchema, parseFlags } from '../config/flags.js';
import { checkMethod } from '../protocol/shadowsocks/key-material.js';
import { isProtocolError } from '../protocol/errors.js';
import { UsageError } from './errors.js';
import { StartAborted, unlessAborted, untilSignal } from './shutdown.js';
import { startupDone } from '../shared/startup.js';
import { dynamicKeyNote } from './banner-text.js';
import { managedBanners } from './managed-banner.js';
import {
  cachedKeysForOfflineStart,
  checkNodeFlags,
  fleetView,
  keyCacheWriter,
  nodeWriterId,
  startNode,
  storePoolOption,
  type FleetViewOf,
} from './fleet-node.js';
import { hooksFor, tee } from './plane-hooks.js';
import { StartupLog } from './startup-log.js';
import { subscriptionEndpointOf } from './web-endpoint.js';
import type { PortPool } from './port-pool.js';
import { startPool, type PlaneSetup, type PrimaryPlane } from './managed-planes.js';
import { checkPortsFree, startApiOrRefuse, startMetricsFor } from './managed-listen.js';
import {
  planWeb,
  saveWebEndpoint,
  startWeb,
  startWebOnlyServer,
  storedSecretPath,
  webEndpointOf,
  webBannerUrls,
  webStatusLine,
  type RunningWeb,
} from './web.js';
import { checkPublicHost, type ManagedFlags } from './managed-options.js';
import {
  planShadowTls,
  saveShadowTlsEndpoint,
  shadowTlsBannerLines,
  startManagedShadowTls,
  type ShadowTlsPlan,
} from './shadowtls.js';
import { lockDataDir } from './data-dir-lock.js';
import { checkOwnPortsDistinct } from './own-ports.js';
import { applyPortFlag, applyPublicHostFlag } from './port-for-new-keys.js';
import {
  clearFirstStartMark,
  keyDigest,
  markNamesKey,
  readFirstStartMark,
  writeFirstStartMark,
} from './first-start-mark.js';

/**
 * Managed mode of `ladder server`: data plane + store + management API + metrics in one process.
 * This is what `npm start` runs on a clean clone: a SQLite store under ./.ladder, one initial key,
 * the Outline-compatible API on HTTPS, Prometheus metrics on loopback.
 */
export { addManagedOptions, checkPublicHost, type ManagedFlags } from './managed-options.js';

export { DEFAULT_DATA_DIR };
/** The data port a store is created with when the CLI creates it before any server ran. */
export const DEFAULT_DATA_PORT = DEFAULT_SERVER_PORT;

export { chooseMode, type ServerMode } from './server-mode.js';

/** The host for access URLs when none is configured: the listen address, else the first global IPv4. */
export function guessHost(listenHost?: string): string {
  if (listenHost && listenHost !== '0.0.0.0' && listenHost !== '::') return listenHost;
  const addrs = Object.values(networkInterfaces()).flatMap((l) => l ?? []);
  const v4 = addrs.find((a) => a.family === 'IPv4' && !a.internal);
  if (v4) return v4.address;
  return '127.0.0.1';
}

export { PortPool } from './port-pool.js';

import type { ManagedServer, ManagedTuning } from './managed-types.js';
export type { ManagedServer, ManagedTuning };

/** Start everything; the caller prints `banner` and waits for a signal. */
export async function startManaged(
  flags: ManagedFlags,
  log: Logger,
  tuning: ManagedTuning = {},
): Promise<ManagedServer> {
  // Loaded here, not at the top: the unmanaged server and `ladder client` never load the store,
  // fastify or prom-client (see bin/ladder.js and test/cli/lazy-loading.test.ts).
  const {
    accessConfigLine,
    accessUrl,
    webOnlyFor,
    buildDynamicApp,
    dynamicUrlVia,
    ensureCertificate,
    loadApiAddress,
    newCertificateWarning,
    subscriptionUrlVia,
  } = await import('../api/index.js');
  const { createMetrics } = await import('../metrics/index.js');
  const {
    checkBeforeServing,
    createAccessKeys,
    ensureFirstKey,
    generateSecret,
    KeyEnforcer,
    openStore,
    parseStoreLocation,
    StoreError,
  } = await import('../store/index.js');
  const dataDir = resolve(flags.dataDir ?? DEFAULT_DATA_DIR);
  const parsed = parseFlags(managedFlagsSchema, flags);
  const dataPortFlag = parsed.port;
  const apiPortFlag = parsed.apiPort;
  const metricsPortFlag = parsed.metricsPort;
  checkPublicHost(flags.publicHost);
  if (flags.method !== undefined) {
    try {
      checkMethod(flags.method);
    } catch (err) {
      throw new UsageError(`--method: ${isProtocolError(err) ? err.message : String(err)}`);
    }
  }
  const idleMs = parsed.idleTimeout !== undefined ? Math.round(parsed.idleTimeout * 1000) : undefined;
  const pendingCaps =
    parsed.maxPendingPerIp !== undefined || parsed.maxPending !== undefined
      ? { perAddress: parsed.maxPendingPerIp, total: parsed.maxPending }
      : undefined;
  const dynamicListen = parsed.dynamicListen;
  let dynamicUrl: string | null | undefined;
  if (flags.dynamicUrl !== undefined) {
    if (flags.dynamicUrl === 'none') dynamicUrl = null;
    else if (/^https:\/\/[^/\s]+/.test(flags.dynamicUrl)) dynamicUrl = flags.dynamicUrl.replace(/\/+$/, '');
    else throw new UsageError(`--dynamic-url must be an https:// URL (or "none"), got "${flags.dynamicUrl}"`);
  }
  // A mistyped --store (mysql://) is refused before the data directory is made or locked.
  let storeLocation: StoreLocation;
  try {
    storeLocation = parseStoreLocation(flags.store, dataDir);
  } catch (err) {
    throw err instanceof StoreError ? new UsageError(err.message) : err;
  }
  // One server per data directory, before anything is read or written (data-dir-lock.ts).
  const unlock = lockDataDir(dataDir);
  let store: KyselyStore;
  let webPlan: Awaited<ReturnType<typeof planWeb>>;
  let stlsPlan: ShadowTlsPlan | undefined;
  try {
    webPlan = await planWeb(flags, undefined, dataDir);
    stlsPlan = planShadowTls(flags);
    checkOwnPortsDistinct([
      ['--port', dataPortFlag, flags.host],
      ['--api-port', apiPortFlag, flags.apiHost],
      [
        '--metrics-port',
        flags.metrics === false ? undefined : metricsPortFlag,
        flags.metricsHost ?? '127.0.0.1',
      ],
      ['--web-port', webPlan?.port, webPlan?.host],
      ['--shadowtls-port', stlsPlan?.port, stlsPlan?.host],
    ]);
    if (flags.node !== undefined) await checkNodeFlags(flags.node, storeLocation);
    checkBeforeServing(storeLocation); // a lost or damaged store is refused before anything serves
    // A fleet node (PostgreSQL) outlives its database: it may start from its cached key set.
    const fleet = storeLocation.kind === 'postgres';
    store = await openStore(storeLocation, {
      logger: log,
      defaults: {
        hostname: flags.publicHost ?? guessHost(flags.host),
        port: dataPortFlag ?? DEFAULT_DATA_PORT,
      },
      ...(fleet
        ? { writerId: nodeWriterId(flags.node, dataDir), allowOffline: true, ...storePoolOption(process.env) }
        : {}),
      ...(tuning.storeOptions ?? {}),
    });
  } catch (err) {
    unlock();
    if (err instanceof StoreError) throw new UsageError(err.message);
    throw err;
  }
  const cleanups: (() => Promise<void>)[] = [async () => unlock(), () => store.close()];
  const cached = await cachedKeysForOfflineStart(store, dataDir, log).catch(async (err: unknown) => {
    await store.close().catch(() => undefined);
    unlock();
    throw err;
  });
  const closeAll = async (): Promise<void> => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  };
  try {
    // A fleet node (--node): the API's view of the fleet, filled in once the node is registered.
    let fleet: FleetViewOf | undefined;
    const metrics = createMetrics({ speedStats: speedLimitStats });
    metrics.watchDevices(processDeviceCounts); // device limits: per key, no address
    const planeOptions: Omit<DataPlaneOptions, 'keys' | 'port'> = {
      host: flags.host,
      logger: log,
      usage: tee(store, metrics),
      hooks: hooksFor(metrics),
      ...(tuning.usageFlushMs !== undefined ? { usageFlushMs: tuning.usageFlushMs } : {}),
      ...(idleMs !== undefined ? { timeouts: { idleMs } } : {}),
      ...(flags.allowPrivate ? { allowPrivateDestinations: true } : {}),
      ...(pendingCaps ? { pending: pendingCaps } : {}),
      udp: flags.udp !== false,
    };
    const planes: PlaneSetup = {
      options: planeOptions,
      // In the data directory unless --replay-state names one.
      replayStateFile: flags.replayState ?? join(dataDir, 'replay-state.bin'),
      workers: parsed.workers,
      reportMs: tuning.reportMs,
      lowerPriority: tuning.lowerPriority === true,
      log,
      cleanups,
    };
    const counts = (statuses: readonly KeyStatus[]): void => {
      const c: Record<string, number> = { active: 0, disabled: 0, expired: 0, over_limit: 0 };
      for (const s of statuses) c[s.state] = (c[s.state] ?? 0) + 1;
      metrics.setKeyStates(c);
    };
    let planePort = 0;
    const pollMs =
      tuning.enforceIntervalMs ?? (parsed.keyPoll !== undefined ? parsed.keyPoll * 1000 : undefined);
    const saveCache =
      store.dialect === 'postgres' ? await keyCacheWriter(dataDir, () => planePort, log) : undefined;
    const startEnforcer = async (pool: PortPool, initial?: readonly CachedKey[]): Promise<KeyEnforcer> => {
      const e = new KeyEnforcer({
        store,
        control: pool,
        logger: log,
        onEvaluate: (statuses) => {
          counts(statuses);
          fleet?.running?.node.evaluated();
        },
        ...(initial ? { initialActive: initial } : {}),
        ...(saveCache ? { onActiveChange: saveCache } : {}),
        ...(pollMs !== undefined ? { intervalMs: pollMs } : {}),
      });
      cleanups.push(async () => e.stop()); // before start(): an aborted start's enforcer stops too
      await unlessAborted(e.start(), tuning.signal);
      return e;
    };
    // Started while the store is down: serve the cached keys now, the rest once it answers.
    let early: { plane: PrimaryPlane; pool: PortPool; enforcer: KeyEnforcer } | undefined;
    if (cached) {
      const started = await startPool(dataPortFlag ?? cached.port, planes);
      planePort = started.plane.address.port;
      await started.pool.applyKeyDelta({ upsert: cached.keys, remove: [] });
      early = { ...started, enforcer: await startEnforcer(started.pool, cached.keys) };
      await unlessAborted(store.ready, tuning.signal); // SIGTERM meanwhile: runManaged's abort
    }
    // Refuses a name whose node is running (fresh heartbeat) before anything more listens.
    if (flags.node !== undefined) fleet = await fleetView(store, flags.node);
    // A fleet node's --public-host is its own address (nodes table), not the shared setting.
    if (flags.node === undefined) await applyPublicHostFlag(store, flags.publicHost, log);
    if (dynamicUrl !== undefined) await store.updateSettings({ dynamicKeyBaseUrl: dynamicUrl });
    let settings = await store.getSettings();
    const firstServerStart = await applyPortFlag(store, settings, dataPortFlag, log);
    settings = await store.getSettings();
    const primaryPort = dataPortFlag ?? settings.portForNewAccessKeys;
    // The API's certificate and key (made at the first start) before anything listens: a damaged
    // one is refused in one line with nothing logged before it (startApi reads them again).
    // Made now: this data directory's first start (a new fleet node's too), whose banner goes to the log.
    // A first start refused or killed after making it or the key left a mark (written before
    // either is made): this start is still the first.
    const pending = await readFirstStartMark(dataDir);
    const markFirst = pending ? undefined : () => writeFirstStartMark(dataDir, {});
    const cert = early
      ? undefined
      : await ensureCertificate(dataDir, settings.hostnameForAccessKeys, markFirst);
    const certNow = cert?.created === true;
    if (certNow) await tuning.made?.('certificate');
    // Made now for a store that has served the API (its port recorded): clients pin the old one.
    if (certNow && !fleet && settings.apiPort !== null) log.warn(newCertificateWarning(dataDir, cert.sha256));
    // The same for the API's and an explicit metrics port taken by another program: refused
    // before the data plane logs "listening" (startApi and the metrics server check again).
    // A fleet node's API port is its own (api-endpoint.json), never the shared setting.
    const ownApi = fleet ? await loadApiAddress(dataDir) : undefined;
    const apiPort = apiPortFlag ?? (fleet ? ownApi?.port : settings.apiPort) ?? 0;
    if (!early) await checkPortsFree(apiPort, metricsPortFlag, flags);
    const { plane, pool } = early ?? (await startPool(primaryPort, planes));
    planePort = plane.address.port;
    if (
      plane.address.port !== settings.portForNewAccessKeys &&
      (firstServerStart || !settings.portForNewAccessKeys)
    ) {
      await store.updateSettings({ portForNewAccessKeys: plane.address.port });
      settings = await store.getSettings();
    }
    // Nodes starting at once on an empty store make one initial key between them (a lock). Only
    // once the ports are ours: a start refused above makes none, so the retry is the first start.
    // Marked before it is made (by its secret): a start killed after making it leaves the mark.
    const first = await ensureFirstKey(store, storeLocation, async () => {
      const method = flags.method ?? DEFAULT_METHOD;
      const secret = generateSecret(method);
      await writeFirstStartMark(dataDir, { key: keyDigest(secret) });
      return (await createAccessKeys(store, { name: 'Initial key', method, secret })).keys[0]!;
    });
    const firstKey = first.key;
    const createdNow = first.created;
    if (createdNow) await tuning.made?.('key');
    // This data directory's first start made the key (now, or before a refusal or crash).
    const keyMadeHere = createdNow || markNamesKey(pending, firstKey);

    const enforcer = early?.enforcer ?? (await startEnforcer(pool));

    const apiAddress: ApiAddress = {}; // filled in by startApi; the dynamic listener's URLs use it too
    // Set once the metrics server runs, after the API (which asks whether metrics are served).
    let metricsServer: MetricsServer | undefined = undefined;
    let web: RunningWeb | undefined; // started after the API; subscriptions read it per request
    let shadowTlsEndpoint: ShadowTlsEndpoint | undefined; // likewise
    const shadowTls = (): ShadowTlsEndpoint | undefined => shadowTlsEndpoint;
    const webEndpoint = (): WebEndpoint | undefined =>
      // Every key of every port is served over the web front (the pool attaches its server).
      web && subscriptionEndpointOf(web, flags.udp !== false, undefined);
    const api = await startApiOrRefuse(
      {
        store,
        control: pool,
        metrics,
        metricsServed: () => metricsServer !== undefined,
        webEndpoint,
        shadowTls,
        fleet,
        logger: log,
        enforcer,
        dataDir,
        ...(tuning.dashboardDir !== undefined ? { dashboardDir: tuning.dashboardDir } : {}),
        host: flags.apiHost ?? '0.0.0.0',
        port: apiPort,
        // A fleet node's URLs name its own API (host, port, pin), not shared parts (docs/fleet.md).
        apiAddress,
        publicHost: fleet ? (flags.publicHost ?? guessHost(flags.host)) : undefined,
      },
      apiPortFlag ?? settings.apiPort,
    );
    cleanups.push(() => api.close());

    let dynamicAddress: string | undefined;
    if (dynamicListen) {
      const dyn = await buildDynamicApp({
        ...{ store, control: pool, logger: log, enforcer, webEndpoint, shadowTls, fleet, apiAddress },
      });
      cleanups.push(() => dyn.close());
      try {
        dynamicAddress = await dyn.listen(dynamicListen);
      } catch (err) {
        const code = bindErrorCode(err);
        if (!code) throw err;
        throw new UsageError(
          `cannot serve dynamic keys on ${flags.dynamicListen}: ${explainBindError(code, dynamicListen.port)}; use --dynamic-listen`,
        );
      }
    }
    settings = await store.getSettings();

    if (webPlan) {
      const secretPath = await storedSecretPath(dataDir, webPlan.secretPath);
      // Its own server (no listener) with every key of every port; the pool keeps its keys. It
      // checks salts against the primary port's replay filters (the workers' shared ones), so a
      // connection recorded on the raw port and replayed to the web front is refused, and back.
      pool.attachWebServer(
        await startWebOnlyServer({
          ...planeOptions,
          ...(plane.replayFilters ? { replayFilters: plane.replayFilters } : {}),
        }),
      );
      web = await startWeb(
        { ...webPlan, secretPath },
        pool.webServer!,
        flags.udp !== false,
        log,
        pendingCaps,
      );
      if (web.webOnly && !settings.dynamicKeyBaseUrl)
        log.warn(
          '--advertise web: dynamic-key and subscription URLs still name this host (the API port); set dynamicKeyBaseUrl to a URL through the CDN',
        );
      const w = web;
      cleanups.push(() => w.close());
    }
    // The web front's server (every key of every port) takes its streams; one is made if none is.
    const stls =
      stlsPlan &&
      (await startManagedShadowTls(
        stlsPlan,
        dataDir,
        pool,
        () =>
          startWebOnlyServer({
            ...planeOptions,
            ...(plane.replayFilters ? { replayFilters: plane.replayFilters } : {}),
          }),
        idleMs ?? DEFAULT_IDLE_SECONDS * 1000,
        log,
      ));
    if (stls) {
      cleanups.push(() => stls.close());
      shadowTlsEndpoint = {
        port: stls.port,
        sni: stls.sni,
        udp: flags.udp !== false,
      };
    }
    await saveWebEndpoint(dataDir, web && webEndpointOf(web, settings.hostnameForAccessKeys));
    await saveShadowTlsEndpoint(dataDir, stls);

    // metricsMoved: the default metrics port was taken (another server on this host).
    const { server: ms, moved: metricsMoved } = await startMetricsFor(metrics, flags, metricsPortFlag);
    metricsServer = ms;
    if (ms) cleanups.push(() => ms.close());

    if (fleet && storeLocation.kind === 'postgres') {
      fleet.running = await startNode({
        name: flags.node!,
        loc: storeLocation,
        store,
        enforcer,
        metrics,
        log,
        hosts: [flags.publicHost ?? guessHost(flags.host)],
        port: plane.address.port,
        udp: flags.udp !== false,
        apiPort: api.port,
        web: webEndpoint(),
        shadowTls: shadowTls(),
      });
      const running = fleet.running;
      cleanups.push(() => running.node.close());
    }

    // --advertise web: the key's URL is the web front's (webOnlyFor), never this host's raw port.
    const url = accessUrl(
      firstKey,
      settings,
      firstKey.name || 'ladder',
      webOnlyFor(webEndpoint(), firstKey, settings),
    );
    const banners = await managedBanners({
      storeLocation,
      dataDir,
      // A PostgreSQL LADDER_STORE stays in the environment (its URL holds a password); a SQLite
      // path is no secret, and a typed --data-dir would make LADDER_STORE yield: named as --store.
      storeFlagGiven:
        flags.store !== undefined && (flags.storeFromEnv !== true || storeLocation.kind === 'sqlite'),
      storeFromEnv: flags.storeFromEnv === true && storeLocation.kind === 'postgres',
      fleetLine: fleet?.running?.line,
      port: plane.address.port,
      portForNewKeys: settings.portForNewAccessKeys,
      otherPorts: await pool.portsSettled(),
      udp: flags.udp !== false,
      keyCount: await store.countKeys(),
      workers: plane.workers,
      apiPort: api.port,
      metricsUrl:
        metricsServer &&
        `${metricsServer.url}${metricsMoved ? ` (port ${DEFAULT_METRICS_PORT} was in use; --metrics-port N fixes one)` : ''}`,
      dynamicAddress,
      webLine: web && webStatusLine(web),
      ...(stls
        ? shadowTlsBannerLines(stls, firstKey, settings.hostnameForAccessKeys, firstKey.name || 'ladder')
        : {}),
      allowPrivate: flags.allowPrivate === true,
      methodNote:
        flags.method !== undefined && !keyMadeHere && flags.method !== firstKey.method
          ? flags.method
          : undefined,
      accessConfig: accessConfigLine(api),
      createdNow: keyMadeHere,
      // A shared store's key made elsewhere was handed out already: a node's log gets no copy of it.
      keyInLog: keyMadeHere || storeLocation.kind !== 'postgres',
      keyLabel: firstKey.name || firstKey.id,
      keyId: firstKey.id,
      url,
      dynamic: dynamicUrlVia(firstKey, settings, api.endpoint, firstKey.name || 'ladder'),
      dynamicNote: dynamicKeyNote(settings.dynamicKeyBaseUrl),
      subscription: subscriptionUrlVia(firstKey, settings, api.endpoint),
      ...webBannerUrls(firstKey, settings.hostnameForAccessKeys, web, firstKey.name || 'ladder'),
      drawQr: tuning.drawQr !== false,
    });
    log.info({ keys: pool.keyCount }, 'keys updated'); // once: every port's and the web front's
    await clearFirstStartMark(dataDir); // served: the next start is a restart

    return {
      store,
      plane,
      workers: plane.workers,
      pool,
      api,
      metricsServer,
      enforcer,
      web,
      dynamicAddress,
      ...banners,
      firstStart: createdNow || certNow || pending !== undefined,
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/** Run managed mode until SIGINT/SIGTERM. */
export async function runManaged(flags: ManagedFlags): Promise<void> {
  // Start-up info lines wait until the banner is out (warnings and errors do not).
  const startupLog = new StartupLog();
  const log = createLogger({
    ...(flags.logLevel !== undefined ? { level: flags.logLevel } : {}),
    destination: startupLog,
  });
  // Secrets go to the screen, or once at the first start; never into every restart's log.
  // The QR code only to a terminal (in a log file it is a screenful of escape codes).
  const tty = process.stdout.isTTY === true;
  // The handlers go in before anything starts: a node waiting for its database (serving cached
  // keys) must stop on SIGTERM, and a worker give-up (stopForFatal) must stop it too. Whoever reads
  // the banner's "Ctrl-C to stop." may signal at once as well.
  const abort = new AbortController();
  const failed = new AbortController();
  let starting: Promise<ManagedServer> | undefined;
  const close = async (): Promise<void> => {
    abort.abort(); // a start still under way closes what it started and throws StartAborted
    await (await starting?.catch(() => undefined))?.close();
  };
  const stopped = untilSignal({
    close,
    message: 'server stopping',
    log,
    startupOver: false,
    cancel: failed.signal,
  });
  try {
    starting = startManaged(flags, log, { drawQr: tty, lowerPriority: true, signal: abort.signal });
    const server = await starting;
    if (!abort.signal.aborted)
      process.stdout.write(tty ? server.banner : server.firstStart ? server.logBanner : server.publicBanner);
    setImmediate(startupDone);
  } catch (err) {
    // Stopped during the start (StartAborted, or whatever a closed store made the start throw).
    if (!(err instanceof StartAborted) && !abort.signal.aborted) {
      failed.abort(); // the handlers go; the error is the command's
      throw err;
    }
  } finally {
    startupLog.release();
  }
  await stopped;
}
