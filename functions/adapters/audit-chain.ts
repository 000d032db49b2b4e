import { createHash } from 'node:crypto';
import type { ChangeEvent } from '../core/types';

/**
 * The audit log's hash chain. Each topic-partition has its own chain (one writer at a time, in offset order); each
 * entry carries its sequence number, the hash of the previous entry and its own hash:
 *   hash = sha256(prev + "\n" + JSON.stringify(event))
 * so changing, removing or reordering an entry, or losing an object, breaks the chain where it happened.
 */
export const GENESIS = '0'.repeat(64);

export interface AuditEntry {
  seq: number;
  prev: string;
  hash: string;
  event: ChangeEvent;
}

/** The head of one chain, kept in the lane's checkpoint (sink state). */
export interface ChainHead {
  /** When the chain started (ms); part of the object keys, so a chain restarted from scratch never overwrites. */
  epoch: number;
  /** Sequence number of the next entry. */
  seq: number;
  /** Hash of the last entry (GENESIS before the first). */
  hash: string;
}

export function entryHash(prev: string, eventJson: string): string {
  return createHash('sha256').update(prev).update('\n').update(eventJson).digest('hex');
}

/** Appends events to a chain: returns the NDJSON lines and the new head. */
export function chainEntries(head: ChainHead, events: readonly ChangeEvent[]): { lines: string[]; head: ChainHead } {
  const lines: string[] = [];
  let { seq, hash } = head;
  for (const event of events) {
    const eventJson = JSON.stringify(event);
    const next = entryHash(hash, eventJson);
    lines.push(`{"seq":${seq},"prev":"${hash}","hash":"${next}","event":${eventJson}}`);
    hash = next;
    seq++;
  }
  return { lines, head: { epoch: head.epoch, seq, hash } };
}

export type ChainProblem =
  | { kind: 'unparsable'; object: string; line: number; message: string }
  | { kind: 'gap'; object: string; line: number; expectedSeq: number; seq: number }
  | { kind: 'prev-mismatch'; object: string; line: number; seq: number; expected: string; found: string }
  | { kind: 'hash-mismatch'; object: string; line: number; seq: number };

export interface ChainCheck {
  entries: number;
  lastHash: string;
  problems: ChainProblem[];
}

/**
 * Verifies one chain given its objects' NDJSON text in key order. Stops at the first problem of each object's
 * continuation but reports every problem it finds, with the object and line where the chain breaks.
 */
export function verifyChain(
  objects: ReadonlyArray<{ key: string; text: string }>,
): ChainCheck & { events: ChangeEvent[] } {
  const problems: ChainProblem[] = [];
  const events: ChangeEvent[] = [];
  let expectedSeq = 0;
  let expectedPrev = GENESIS;
  for (const { key, text } of objects) {
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i] as string;
      if (line === '') continue;
      let entry: AuditEntry;
      try {
        entry = JSON.parse(line) as AuditEntry;
      } catch (error) {
        problems.push({ kind: 'unparsable', object: key, line: i + 1, message: (error as Error).message });
        continue;
      }
      if (entry.seq !== expectedSeq)
        problems.push({ kind: 'gap', object: key, line: i + 1, expectedSeq, seq: entry.seq });
      if (entry.prev !== expectedPrev) {
        problems.push({
          kind: 'prev-mismatch',
          object: key,
          line: i + 1,
          seq: entry.seq,
          expected: expectedPrev,
          found: entry.prev,
        });
      }
      if (entryHash(entry.prev, JSON.stringify(entry.event)) !== entry.hash) {
        problems.push({ kind: 'hash-mismatch', object: key, line: i + 1, seq: entry.seq });
      }
      events.push(entry.event);
      expectedSeq = entry.seq + 1;
      expectedPrev = entry.hash;
    }
  }
  return { entries: events.length, lastHash: expectedPrev, problems, events };
}
