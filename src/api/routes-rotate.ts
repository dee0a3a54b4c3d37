/**
 * POST /access-keys/{id}/rotate (a Ladder extension beside the Outline API): a new secret for a
 * key that keeps everything else (id, name, port, method, limits, expiry, usage and its access
 * token, so its ssconf:// URL and subscription carry the new secret at their next fetch). The
 * key's open connections are closed on every node (the data plane closes a replaced key's, as a
 * disabled key's): the point of
 * rotating is usually to cut a leaked secret off.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { KeySecretError, rotatedSecret } from './key-secrets.js';
import {
  apiEndpointOf,
  secretApiError,
  statusIndex,
  toAccessKeyJson,
  type ApiContext,
  devicesInUseOf,
} from './context.js';
import { keyNotFound } from './errors.js';
import { AccessKey, ErrorBody, IdParams } from './schemas.js';

const RotateBody = z
  .object({
    password: z
      .string()
      .min(1)
      .max(512)
      .optional()
      .meta({ description: 'The new secret (default: a fresh one, as for a new key)' }),
  })
  .optional();

export function registerRotateRoute(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.post(
    '/access-keys/:id/rotate',
    {
      schema: {
        tags: ['Ladder extensions'],
        description:
          "Gives the key a new secret; keeps its id, name, limits, expiry, usage and access token (dynamic key and subscription URLs stay); closes the key's open connections",
        params: IdParams,
        body: RotateBody,
        response: { 200: AccessKey, 400: ErrorBody, 404: ErrorBody, 409: ErrorBody },
      },
    },
    async (req) => {
      const { store } = ctx;
      const key = await store.getKey(req.params.id);
      if (!key) throw keyNotFound(req.params.id);
      let secret: string;
      try {
        const next = await rotatedSecret(store, key, req.body?.password);
        secret = next.secret;
        // Another key's secret is refused in the update's own transaction (Store.updateKey).
        if (!(await store.updateKey(key.id, { secret }, next.check))) throw keyNotFound(req.params.id);
      } catch (err) {
        if (err instanceof KeySecretError) throw secretApiError(err);
        throw err;
      }
      await ctx.enforcer.refresh();
      const settings = await store.getSettings();
      const now = (await store.getKey(key.id)) ?? { ...key, secret };
      return toAccessKeyJson(
        now,
        settings,
        statusIndex(ctx.enforcer).get(key.id),
        apiEndpointOf(ctx, settings),
        ctx.webEndpoint?.(),
        ctx.shadowTls?.(),
        devicesInUseOf(ctx),
      );
    },
  );
}
