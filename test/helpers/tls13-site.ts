/**
 * A TLS 1.3-only nginx site on loopback for the tests of Ladder's own TLS client and ShadowTLS:
 * `certs` (the lab CA's) written into `dir`, which nginx also serves as the site's root.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LabCertificates } from '../../src/lab/lab-ca.js';

/** Write the certificate and key into `dir` (readable by nginx's worker) and return the server block for startNginx. */
export function nginxTls13Site(dir: string, certs: LabCertificates, name: string, extra = ''): string {
  writeFileSync(join(dir, 'cert.pem'), certs.cert);
  writeFileSync(join(dir, 'key.pem'), certs.key);
  chmodSync(dir, 0o755); // nginx's worker reads the root as another user
  return `
    listen 127.0.0.1:{{PORT}} ssl;
    server_name ${name};
    ssl_certificate ${join(dir, 'cert.pem')};
    ssl_certificate_key ${join(dir, 'key.pem')};
    ssl_protocols TLSv1.3;${extra}
    root ${dir};
    location / { }`;
}
