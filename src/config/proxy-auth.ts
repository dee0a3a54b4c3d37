/**
 * Proxy credentials applications must give (SOCKS5 RFC 1929, HTTP Basic): `--auth`, LADDER_AUTH
 * or "auth" in the client's config file. Its own module, free of zod, because the client reads
 * --auth and LADDER_AUTH on every start and must not load the config schema for that.
 */
export interface ProxyAuth {
  username: string;
  password: string;
}

/** "user:password" (the first colon splits; the password may hold more), as --auth takes it. */
export function parseProxyAuth(text: string): ProxyAuth | undefined {
  const colon = text.indexOf(':');
  if (colon <= 0 || colon === text.length - 1) return undefined;
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}
