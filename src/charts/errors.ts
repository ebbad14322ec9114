// Errors of the chart source, before they are given the release and file they concern.

/** A chart source problem, with the releases.yaml field it is about (repo, chart, version). */
export class ChartSourceError extends Error {
  constructor(
    message: string,
    readonly field?: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'ChartSourceError';
  }
}

export function statusMessage(status: number, what: string): string {
  if (status === 401) return `${what} answered 401 Unauthorized`;
  if (status === 403) return `${what} answered 403 Forbidden`;
  if (status === 404) return `${what} answered 404 Not Found`;
  return `${what} answered HTTP ${status}`;
}

export function statusHint(status: number): string | undefined {
  return status === 401 || status === 403
    ? 'give credentials for it in --chart-auth-file (MOORING_CHART_AUTH_FILE)'
    : undefined;
}
