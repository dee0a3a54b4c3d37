import { createHash, timingSafeEqual, X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import fastifySwagger from '@fastify/swagger';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
} from 'fastify-type-provider-zod';
import type { ServerControl } from '../shared/control.js';
import { systemClock, type Clock } from '../shared/clock.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import type { LadderMetrics } from '../metrics/index.js';
import { AEAD_METHODS } from '../protocol/shadowsocks/methods.js';
import { AEAD_2022_METHODS } from '../protocol/shadowsocks/methods2022.js';
import { DEFAULT_METHOD } from '../config/defaults.js';
import { isStoreUnavailable, KeyEnforcer, type Store } from '../store/index.js';
import { registerRotateRoute } from './routes-rotate.js';
import type { ApiAddress, ApiContext, FleetView, ShadowTlsEndpoint, WebEndpoint } from './context.js';
import { defaultDashboardDir, registerDashboard } from './dashboard.js';
import { registerDynamicRoutes } from './dynamic.js';
import { registerNodeRoutes } from './fleet.js';
import { ApiError, NOT_FOUND_BODY, storeUnavailable } from './errors.js';
import { registerLadderRoutes } from './routes-ladder.js';
import { registerOutlineRoutes } from './routes-outline.js';
import { registerStatusRoutes } from './routes-status.js';
import { ladderVersion } from './version.js';

/** The Outline server version we answer with: Outline Manager enables features by version (≥1.4.0 for data limits). */
export const OUTLINE_COMPAT_VERSION = '1.12.0';

/**
 * GET /server's `version`: the Outline level Outline Manager compares (semver ignores what follows
 * "+"), then Ladder's own version as semver build metadata, e.g. "1.12.0+ladder.0.1.0".
 */
export function serverVersion(): string {
  return `${OUTLINE_COMPAT_VERSION}+ladder.${ladderVersion()}`;
}

/** Methods new keys may use, the default first: the SIP004 AEAD methods, then the 2022 edition. */
export const DEFAULT_METHODS: readonly string[] = [
  DEFAULT_METHOD,
  ...Object.keys(AEAD_METHODS).filter((m) => m !== DEFAULT_METHOD),
  ...Object.keys(AEAD_2022_METHODS),
];

export interface ApiOptions {
  store: Store;
  control: ServerControl;
  metrics?: LadderMetrics;
  logger?: Logger;
  clock?: Clock;
  /** TLS key and certificate (PEM); omitted = plain HTTP (tests, or behind a TLS-terminating proxy). */
  https?: { key: string; cert: string };
  /** Shared enforcer; omitted = the API creates one and runs it while the app is open. */
  enforcer?: KeyEnforcer;
  /** Enforcement interval when the API creates the enforcer (default 2 s). */
  enforceIntervalMs?: number;
  /** Methods accepted for new keys; the first is the default. */
  methods?: readonly string[];
  version?: string;
  /** Whether the Prometheus endpoint is served now (reported as GET /server's metricsEnabled). */
  metricsServed?: () => boolean;
  /** The web front's public parameters, read per request (subscriptions offer its WebSocket entries). */
  webEndpoint?: () => WebEndpoint | undefined;
  /** The ShadowTLS v3 port's public parameters, read per request (subscriptions offer its entries). */
  shadowTls?: () => ShadowTlsEndpoint | undefined;
  /** The built dashboard (web/dist); omitted = the package's own; null = no dashboard. */
  dashboardDir?: string | null;
  /** The fleet, on a fleet node (--node): keys list its nodes; GET /nodes and friends. */
  fleet?: FleetView | undefined;
  /** Where the API listens as clients reach it (startApi fills in port and pin): context.ts. */
  apiAddress?: ApiAddress | undefined;
  /** A request's headers and body must arrive within this (default API_REQUEST_TIMEOUT_MS). */
  requestTimeoutMs?: number;
}

/**
 * How long a request may take to arrive, headers and body (nginx's client_header_timeout and
 * client_body_timeout are 60 s each). Fastify's default is none (it sets Node's requestTimeout to
 * 0): a client that sent headers and then a body byte now and then held its connection — and a
 * file descriptor of the process the data plane shares — for as long as it liked, without the
 * secret prefix.
 */
export const API_REQUEST_TIMEOUT_MS = 60_000;

/** Node checks the timeouts this often (its default, 30 s, would let a request run 50% over). */
const TIMEOUT_CHECK_MS = 1_000;

/**
 * Fastify's options for that timeout, on HTTPS (`https`) or plain HTTP (`http`). Fastify sets
 * Node's requestTimeout only after creating the server, and Node then enforces it only while
 * headersTimeout (60 s by default) is not longer: both go to the server as it is created too.
 */
function timeoutOptions(timeoutMs: number | undefined, tls?: { key: string; cert: string }) {
  const ms = timeoutMs ?? API_REQUEST_TIMEOUT_MS;
  const server = {
    requestTimeout: ms,
    headersTimeout: ms,
    connectionsCheckingInterval: Math.min(TIMEOUT_CHECK_MS, ms),
  };
  return { requestTimeout: ms, ...(tls ? { https: { ...tls, ...server } } : { http: server }) };
}

const AUTHED = Symbol('ladder.api.authed');
type RawWithAuth = IncomingMessage & { [AUTHED]?: boolean };
/** Where requests with a wrong prefix are sent: a path no route matches. */
const NOWHERE = '/\u0000not-found';

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Constant-time comparison of a path segment with the secret (hashing first equalizes lengths). */
export function prefixMatches(segment: string, secretDigest: Buffer): boolean {
  return timingSafeEqual(digest(segment), secretDigest);
}

/** The router's own errors (an over-long id, a bad %-escape) in our format, never echoing the path. */
function frameworkErrors(err: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  const authed = (req.raw as RawWithAuth)[AUTHED] === true;
  if (!authed) return void reply.code(404).send(NOT_FOUND_BODY);
  const e =
    err.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? new ApiError(400, 'InvalidArgumentError', 'Invalid "id": longer than 128 characters', 'id')
      : new ApiError(400, 'InvalidArgumentError', 'Invalid path: not a valid URL component');
  void reply.code(400).send(e.toJSON());
}

function unsupportedMediaType(): ApiError {
  return new ApiError(415, 'UnsupportedMediaTypeError', 'Send the body as application/json');
}

function fieldOf(path: string): string {
  return path.replace(/^\//, '').replace(/\//g, '.');
}

/**
 * The management API: every Outline endpoint plus Ladder's extensions under the secret prefix,
 * dynamic keys at /access/{token}, the OpenAPI document at /{prefix}/openapi.json. The API never
 * reaches into the data plane; it changes keys through `control` (via the enforcer).
 */
export async function buildApi(opts: ApiOptions): Promise<FastifyInstance> {
  const settings = await opts.store.getSettings();
  const secretDigest = digest(settings.apiPrefix);
  const logger = opts.logger ?? silentLogger;
  const clock = opts.clock ?? systemClock;
  const ownEnforcer = opts.enforcer === undefined;
  const enforcer =
    opts.enforcer ??
    new KeyEnforcer({
      store: opts.store,
      control: opts.control,
      clock,
      logger,
      intervalMs: opts.enforceIntervalMs ?? 2000,
      ...(opts.metrics ? { onEvaluate: stateCounter(opts.metrics) } : {}),
    });

  const app = Fastify({
    ...timeoutOptions(opts.requestTimeoutMs, opts.https),
    logger: false,
    bodyLimit: 1 << 20,
    // Ids may be up to 128 characters (IdParams); longer ones reach our error handler, not
    // the router's own 414 (which echoes the path: the secret prefix included).
    routerOptions: { maxParamLength: 256 },
    frameworkErrors,
    // Strip the secret prefix before routing; anything else (except dynamic keys) goes nowhere,
    // so a wrong prefix and an unknown path under the right one give the same 404.
    rewriteUrl(req) {
      const raw = req as RawWithAuth;
      const url = req.url ?? '/';
      const m = /^\/([^/?#]*)(.*)$/s.exec(url);
      if (m && prefixMatches(m[1]!, secretDigest)) {
        raw[AUTHED] = true;
        const rest = m[2]!;
        return rest.startsWith('/') ? rest : `/${rest}`;
      }
      if (url.startsWith('/access/') || url.startsWith('/sub/')) return url;
      return NOWHERE;
    },
  }) as unknown as FastifyInstance;

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  // JSON with an empty body counts as no body (curl -X POST -H 'content-type: application/json').
  const defaultJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    if (typeof body === 'string' && body.trim() === '') return done(null, undefined);
    void defaultJson(req, String(body), done);
  });
  // Outline Manager sends some bodies as forms (PUT /access-keys/{id}/name). JSON sent with a
  // form's content type would parse as one nameless field (and create a nameless key): 415.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    const text = String(body);
    if (/^\s*[[{]/.test(text)) return done(unsupportedMediaType(), undefined);
    done(null, Object.fromEntries(new URLSearchParams(text)));
  });
  // Fastify reads text/plain as a string, which then fails validation as a 400; the docs say 415.
  app.removeContentTypeParser('text/plain');

  // Admin routes exist only behind the prefix (defence in depth on top of rewriteUrl).
  app.addHook('onRequest', async (req, reply) => {
    const url = req.routeOptions.url;
    if (url === undefined) return;
    if (
      !url.startsWith('/access/') &&
      !url.startsWith('/sub/') &&
      (req.raw as RawWithAuth)[AUTHED] !== true
    ) {
      return reply.code(404).send(NOT_FOUND_BODY);
    }
  });
  // No body at all = an empty object, so "field missing" errors name the field.
  app.addHook('preValidation', async (req) => {
    if ((req.method === 'PUT' || req.method === 'POST') && (req.body === undefined || req.body === null)) {
      req.body = {};
    }
  });

  app.setNotFoundHandler((_req, reply) => reply.code(404).send(NOT_FOUND_BODY));

  app.setErrorHandler((err: FastifyError, req, reply) => {
    // Errors on unrouted requests (bad body, bad media type) still look like "not found".
    // (Node discards any unread body before the next request, so keep-alive stays as for any 404.)
    if (req.routeOptions.url === undefined) {
      reply.header('connection', /close/i.test(req.headers.connection ?? '') ? 'close' : 'keep-alive');
      return reply.code(404).send(NOT_FOUND_BODY);
    }
    if (err instanceof ApiError) return reply.code(err.status).send(err.toJSON());
    if (hasZodFastifySchemaValidationErrors(err)) {
      const v = err.validation[0];
      const where = err.validationContext ?? 'body';
      const field = v ? fieldOf(v.instancePath) : '';
      const missing = v !== undefined && /received undefined$/.test(v.message ?? '');
      const name = field || where;
      const e = missing
        ? new ApiError(400, 'MissingParameterError', `Parameter "${name}" is missing`, name)
        : new ApiError(
            400,
            'InvalidArgumentError',
            `Invalid "${name}": ${v?.message ?? 'invalid value'}`,
            name,
          );
      return reply.code(400).send(e.toJSON());
    }
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
      return reply.code(415).send(unsupportedMediaType().toJSON());
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply
        .code(413)
        .send(new ApiError(413, 'PayloadTooLargeError', 'Request body too large').toJSON());
    }
    if (err.statusCode === 400) {
      return reply
        .code(400)
        .send(new ApiError(400, 'InvalidArgumentError', 'Invalid "body": not valid JSON', 'body').toJSON());
    }
    if (isStoreUnavailable(err))
      return reply.code(503).header('retry-after', '5').send(storeUnavailable().toJSON());
    logger.error({ err: err.message, route: req.routeOptions.url }, 'API request failed');
    return reply.code(500).send(new ApiError(500, 'InternalServerError', 'Internal error').toJSON());
  });

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Ladder server management',
        description:
          'A superset of the Outline Server Management API. Every path sits under the secret prefix printed at first start (apiUrl).',
        version: serverVersion(),
      },
      servers: [{ url: 'https://myserver/SecretPath', description: 'Replace with your apiUrl' }],
      tags: [
        { name: 'Server', description: 'Server-level functions' },
        { name: 'Access Key', description: 'Access key functions' },
        { name: 'Experimental', description: 'Experimental functions' },
        {
          name: 'Ladder extensions',
          description: 'Expiry, enable/disable, recurring quotas, bulk creation, usage',
        },
      ],
    },
    transform: jsonSchemaTransform,
  });

  const ctx: ApiContext = {
    store: opts.store,
    control: opts.control,
    metrics: opts.metrics,
    enforcer,
    logger,
    clock,
    methods: opts.methods ?? DEFAULT_METHODS,
    version: opts.version ?? serverVersion(),
    metricsServed: opts.metricsServed,
    apiCertSha256: opts.https
      ? new X509Certificate(opts.https.cert).fingerprint256.replace(/:/g, '').toUpperCase()
      : undefined,
    webEndpoint: opts.webEndpoint,
    shadowTls: opts.shadowTls,
    fleet: opts.fleet,
    apiAddress: opts.apiAddress,
  };
  registerOutlineRoutes(app, ctx);
  registerLadderRoutes(app, ctx);
  registerRotateRoute(app, ctx);
  registerStatusRoutes(app, ctx, clock.now());
  registerNodeRoutes(app, ctx);
  registerDynamicRoutes(app, ctx);
  registerDashboard(
    app,
    opts.dashboardDir === null ? undefined : (opts.dashboardDir ?? defaultDashboardDir()),
  );
  app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());

  if (ownEnforcer) {
    app.addHook('onReady', () => enforcer.start());
    app.addHook('onClose', async () => enforcer.stop());
  }
  return app;
}

/**
 * A plain-HTTP listener that serves only the dynamic keys (/access/{token}) and subscriptions
 * (/sub/{token}), for putting behind a
 * TLS-terminating proxy or CDN with a real certificate (Outline clients verify ssconf:// TLS).
 * Everything else gets the same 404 as the API's unknown paths.
 */
export async function buildDynamicApp(
  opts: Pick<
    ApiOptions,
    'store' | 'control' | 'logger' | 'clock' | 'webEndpoint' | 'shadowTls' | 'fleet' | 'apiAddress'
  > & {
    enforcer: KeyEnforcer;
    requestTimeoutMs?: number;
  },
): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    bodyLimit: 1024,
    ...timeoutOptions(opts.requestTimeoutMs),
    // The router's own errors (a token over 100 characters: 414; a bad %-escape: 400) echo the
    // path in Fastify's own JSON, which names the framework to whoever probes the listener (a
    // CDN's origin): the one 404 instead, as for every unknown token.
    frameworkErrors: (_err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void =>
      void reply.code(404).send(NOT_FOUND_BODY),
  }) as unknown as FastifyInstance;
  app.setNotFoundHandler((_req, reply) => reply.code(404).send(NOT_FOUND_BODY));
  // A dynamic key is not "not found" while the store is away: clients keep the one they have.
  app.setErrorHandler((err, _req, reply) =>
    isStoreUnavailable(err)
      ? reply.code(503).header('retry-after', '5').send(storeUnavailable().toJSON())
      : reply.code(404).send(NOT_FOUND_BODY),
  );
  registerDynamicRoutes(app, {
    store: opts.store,
    control: opts.control,
    metrics: undefined,
    enforcer: opts.enforcer,
    logger: opts.logger ?? silentLogger,
    clock: opts.clock ?? systemClock,
    methods: DEFAULT_METHODS,
    version: serverVersion(),
    metricsServed: undefined,
    webEndpoint: opts.webEndpoint,
    shadowTls: opts.shadowTls,
    fleet: opts.fleet,
    apiAddress: opts.apiAddress,
  });
  await app.ready();
  return app;
}

function stateCounter(metrics: LadderMetrics) {
  return (statuses: readonly { state: string }[]): void => {
    const counts: Record<string, number> = { active: 0, disabled: 0, expired: 0, over_limit: 0 };
    for (const s of statuses) counts[s.state] = (counts[s.state] ?? 0) + 1;
    metrics.setKeyStates(counts);
  };
}
