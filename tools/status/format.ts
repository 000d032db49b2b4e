/**
 * How the status screens write numbers and durations: the terminal table of `npm run status` and, in the same
 * words, the page (tools/status/page/app.js keeps a copy in plain JavaScript: the browser loads no TypeScript), which
 * the browser test compares with these.
 */

/** A count with thousands separators, or `–` when unknown. */
export function formatCount(n: number | null | undefined): string {
  return n === null || n === undefined ? '–' : Math.round(n).toLocaleString('en-US');
}

/** A duration in ms, s or min, or `–` when unknown. */
export function formatAge(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60_000)} min`;
}
