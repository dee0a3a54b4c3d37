import { CodedError } from '../shared/errors.js';

export type CertificateErrorCode = 'CERT_DAMAGED' | 'CERT_CREATE_FAILED';

/**
 * The API certificate or key cannot be used or made: one line naming the file and the next step.
 * A module of its own (no dependencies) so the CLI's error classification loads nothing else.
 */
export class CertificateError extends CodedError<CertificateErrorCode> {
  override readonly name = 'CertificateError';
}
