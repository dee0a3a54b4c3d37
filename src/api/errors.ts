/**
 * API errors: `{code, message}` JSON with a stable code. The codes follow Outline's (restify) names
 * where Outline has one, so scripts that match on them keep working.
 */
export type ApiErrorCode =
  | 'InvalidArgumentError'
  | 'MissingParameterError'
  | 'NotFoundError'
  | 'ConflictError'
  | 'ResourceNotFound'
  | 'UnsupportedMediaTypeError'
  | 'PayloadTooLargeError'
  | 'InternalServerError'
  | 'ServiceUnavailableError';

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
    /** The request field at fault, when there is one (dotted path, e.g. "limit.bytes"). */
    readonly field?: string,
  ) {
    super(message);
  }

  toJSON(): { code: ApiErrorCode; message: string; field?: string } {
    return this.field === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, field: this.field };
  }
}

export const invalid = (field: string, message: string): ApiError =>
  new ApiError(400, 'InvalidArgumentError', message, field);

export const keyNotFound = (id: string): ApiError =>
  new ApiError(404, 'NotFoundError', `No access key found with id ${JSON.stringify(id)}`);

/** The one body every unknown path gets, with or without the right secret prefix. */
export const NOT_FOUND_BODY = Object.freeze({ code: 'ResourceNotFound', message: 'Not found' });

/** The answer while the key store (PostgreSQL) cannot be reached: 503, not a stack or a hang. */
export function storeUnavailable(): ApiError {
  return new ApiError(
    503,
    'ServiceUnavailableError',
    'The key store (PostgreSQL) is unreachable; keys in use keep working. Try again when it is back.',
  );
}
