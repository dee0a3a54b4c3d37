import { ClientConfigError } from './errors.js';

/** How destinations without a matching rule are routed (src/client/routing/router.ts). */
export type RouteMode = 'auto' | 'proxy' | 'direct';
export const ROUTE_MODES: readonly RouteMode[] = ['auto', 'proxy', 'direct'];

/** "auto", "proxy" or "direct", any case, trimmed. */
export function routeModeOf(text: string): RouteMode | undefined {
  const t = text.trim().toLowerCase();
  return (ROUTE_MODES as readonly string[]).includes(t) ? (t as RouteMode) : undefined;
}

export function parseRouteMode(text: string, what = '--route'): RouteMode {
  const mode = routeModeOf(text);
  if (mode === undefined)
    throw new ClientConfigError(`${what} must be auto, proxy or direct, got "${text}"`, what);
  return mode;
}
