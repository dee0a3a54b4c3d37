import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import type { LightMyRequestResponse } from 'fastify';
import type { Harness } from './helpers.js';

/**
 * Outline's Server Management API spec and a Walker that calls operations through a test harness
 * and checks each response's status and body against it (conformance.test.ts walks every
 * operation; other tests check the responses they care about).
 */

// Outline's own spec (Apache-2.0), vendored so the test needs nothing outside the repository.
const SPEC_PATH = fileURLToPath(new URL('../../docs/specs/outline-management-api.yml', import.meta.url));

export type Json = Record<string, unknown>;
interface Operation {
  responses: Record<string, { content?: Record<string, { schema?: Json }> }>;
}

function loadSpec(): Json {
  return parseYaml(readFileSync(SPEC_PATH, 'utf8')) as Json;
}

const spec = loadSpec();
const components = (spec.components as { schemas: Record<string, Json> }).schemas;
const paths = spec.paths as Record<string, Record<string, Operation>>;

function deref(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(deref);
  if (node && typeof node === 'object') {
    const o = node as Json;
    if (typeof o.$ref === 'string') {
      const name = o.$ref.replace('#/components/schemas/', '');
      return deref(components[name]);
    }
    const out: Json = {};
    for (const [k, v] of Object.entries(o)) if (k !== 'examples' && k !== 'example') out[k] = deref(v);
    return out;
  }
  return node;
}

const ajv = new Ajv({ strict: false, allErrors: true });
const METHODS = ['get', 'put', 'post', 'delete'] as const;
export const ALL_OPS = Object.entries(paths).flatMap(([p, item]) =>
  METHODS.filter((m) => item[m] !== undefined).map((m) => `${m.toUpperCase()} ${p}`),
);

export class Walker {
  seen = new Set<string>();
  checked = 0;
  constructor(readonly h: Harness) {}

  /** Call `specPath` (with {id} filled by `actualPath`) and check the response against the spec. */
  async op(
    method: string,
    specPath: string,
    expectStatus: number,
    opts: { path?: string; body?: unknown; query?: string } = {},
  ): Promise<LightMyRequestResponse> {
    const operation = paths[specPath]?.[method.toLowerCase()];
    assert.ok(operation, `spec has ${method} ${specPath}`);
    const url = (opts.path ?? specPath) + (opts.query ?? '');
    const res = await this.h.call(method as 'GET', url, opts.body);
    assert.equal(res.statusCode, expectStatus, `${method} ${url}: ${res.body}`);
    const documented = operation.responses[String(res.statusCode)];
    assert.ok(documented, `${method} ${specPath}: status ${res.statusCode} is documented in the spec`);
    const schema = documented.content?.['application/json']?.schema;
    if (schema) {
      assert.match(String(res.headers['content-type']), /^application\/json/);
      const validate = ajv.compile(deref(schema) as Json);
      const body: unknown = JSON.parse(res.body);
      assert.ok(
        validate(body),
        `${method} ${specPath} ${res.statusCode} body matches the spec schema: ${ajv.errorsText(validate.errors)}\n${res.body}`,
      );
      this.checked++;
    } else if (res.statusCode === 204) {
      assert.equal(res.body, '', `${method} ${specPath}: 204 has no body`);
    }
    this.seen.add(`${method} ${specPath}`);
    return res;
  }
}
