// What a failed API call was: its HTTP status and the API server's own message. Works on
// errors of src/kube/rest.ts and of @kubernetes/client-node alike (both carry `code` and
// `body`), without loading the latter.

/** The HTTP status of a failed API call, if it was one. */
export function apiStatusCode(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'number')
    return err.code;
  return undefined;
}

export const isNotFound = (err: unknown): boolean => apiStatusCode(err) === 404;
export const isConflict = (err: unknown): boolean => apiStatusCode(err) === 409;
export const isForbidden = (err: unknown): boolean => apiStatusCode(err) === 403;
export const isAlreadyExists = (err: unknown): boolean => apiStatusCode(err) === 409;

/** A readable message for an API error: the API server's own `message`, not the raw HTTP body. */
export function apiErrorMessage(err: unknown): string {
  const code = apiStatusCode(err);
  if (code !== undefined && typeof err === 'object' && err !== null && 'body' in err) {
    let parsed: unknown = err.body;
    if (typeof parsed === 'string') {
      try {
        parsed = JSON.parse(parsed);
      } catch {
        parsed = undefined;
      }
    }
    if (
      typeof parsed === 'object' &&
      parsed !== null &&
      'message' in parsed &&
      typeof parsed.message === 'string'
    ) {
      return `${parsed.message} (HTTP ${code})`;
    }
    return `HTTP ${code}`;
  }
  return err instanceof Error ? err.message : String(err);
}
