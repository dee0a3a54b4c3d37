export {
  buildApi,
  buildDynamicApp,
  prefixMatches,
  DEFAULT_METHODS,
  OUTLINE_COMPAT_VERSION,
  type ApiOptions,
} from './app.js';
export { ApiError, NOT_FOUND_BODY, type ApiErrorCode } from './errors.js';
export {
  accessUrl,
  dynamicAccessUrl,
  dynamicBaseUrl,
  dynamicUrlVia,
  webOnlyFor,
  type ApiEndpoint,
} from './access-url.js';
export { API_ENDPOINT_FILE, loadApiAddress, localApiEndpoint } from './api-endpoint.js';
export { subscriptionUrl, subscriptionUrlVia, SUB_FORMATS, type SubFormat } from './subscriptions/url.js';
export type { ApiAddress, FleetSelf, FleetView, ShadowTlsEndpoint, WebEndpoint } from './context.js';
export type { FleetServer } from './fleet.js';
export {
  ensureCertificate,
  certSha256,
  newCertificateWarning,
  rotateCertificate,
  CertificateError,
  type ApiCertificate,
  CERT_FILE,
  KEY_FILE,
} from './tls.js';
export { startApi, accessConfigLine, type RunningApi, type StartApiOptions } from './listen.js';
export type * from './schemas.js';
