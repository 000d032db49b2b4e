/**
 * PostgreSQL log sequence numbers. An LSN is an unsigned 64-bit WAL position; PostgreSQL prints it as two hex halves
 * (`0/17764B8`), Debezium as one decimal integer (`source.lsn`, offsets). They are kept as `bigint` here: real LSNs stay
 * far below 2^53, but nothing in the protocol promises it, and the JSON we write must carry every digit.
 */

/** Parses PostgreSQL's `X/Y` text form. */
export function parseLsn(text: string): bigint {
  const slash = text.indexOf('/');
  if (slash < 0) throw new Error(`not an LSN: ${text}`);
  return (BigInt(`0x${text.slice(0, slash)}`) << 32n) | BigInt(`0x${text.slice(slash + 1)}`);
}

/** Formats an LSN the way PostgreSQL prints it (`0/17764B8`), for SQL and replication commands. */
export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** Microseconds between 1970-01-01 and 2000-01-01, PostgreSQL's epoch for protocol timestamps. */
export const PG_EPOCH_OFFSET_US = 946_684_800_000_000n;

/** The larger of two LSNs. */
export function maxLsn(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
