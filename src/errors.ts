/**
 * Errors of embed-image. Every error that the library or the CLI raises on purpose is an
 * EmbedImageError whose `code` is one of the stable strings below, so callers can branch on
 * it without parsing messages.
 */
export type ErrorCode =
  | 'ERR_FILE_NOT_FOUND'
  | 'ERR_FILE_READ'
  | 'ERR_FILE_WRITE'
  | 'ERR_PTE_TRUNCATED'
  | 'ERR_PTE_IDENTIFIER'
  | 'ERR_PTE_HEADER'
  | 'ERR_PTE_VERIFY'
  | 'ERR_PTE_MALFORMED'
  | 'ERR_PTE_EXTERNAL_DATA'
  | 'ERR_UNSUPPORTED_OPERATOR'
  | 'ERR_UNSUPPORTED_BACKEND'
  | 'ERR_UNSUPPORTED_DTYPE'
  | 'ERR_METHOD_NOT_FOUND'
  | 'ERR_INVALID_INPUT'
  | 'ERR_KERNEL'
  | 'ERR_DELEGATE'
  | 'ERR_EXECUTION_LIMIT'
  | 'ERR_OUT_OF_MEMORY'
  | 'ERR_INVALID_ARGUMENT'
  | 'ERR_DISPOSED'
  | 'ERR_NPY'
  | 'ERR_GOLDEN_FORMAT'
  | 'ERR_GOLDEN_INPUT_CHANGED'
  | 'ERR_GOLDEN_MODEL_CHANGED'
  | 'ERR_VECTORS_FORMAT'
  | 'ERR_UNMATCHED_RECORDS'
  | 'ERR_IMAGE_SOURCE'
  | 'ERR_IMAGE_DECODE'
  | 'ERR_IMAGE_TOO_LARGE'
  | 'ERR_ADDON_LOAD'
  | 'ERR_MODEL_NOT_FOUND'
  | 'ERR_MODEL_DOWNLOAD'
  | 'ERR_MODEL_CHECKSUM'
  | 'ERR_OFFLINE'
  | 'ERR_INTERNAL';

export class EmbedImageError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EmbedImageError';
    this.code = code;
  }
}

/** Converts an error thrown by the native addon (an Error with a `code`) to an EmbedImageError. */
export function fromNativeError(error: unknown): EmbedImageError {
  if (error instanceof EmbedImageError) return error;
  if (error instanceof Error) {
    const code = (error as Error & { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('ERR_')) {
      return new EmbedImageError(code as ErrorCode, error.message);
    }
    return new EmbedImageError('ERR_INTERNAL', error.message, { cause: error });
  }
  return new EmbedImageError('ERR_INTERNAL', String(error));
}
