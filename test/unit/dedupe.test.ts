import { describe, expect, it } from 'vitest';
import {
  AppliedSchemas,
  compareOrder,
  digestId,
  HW_IDS_LIMIT,
  PartitionDedupe,
  RedriveDedupe,
  SCHEMAS_LIMIT,
} from '../../functions/core/dedupe';
import type { ChangeEvent, Checkpoint } from '../../functions/core/types';

function change(id: string, order: string, offset: number): ChangeEvent {
  return {
    id,
    op: 'u',
    source: {
      connector: 'postgresql',
      name: 'pg',
      db: null,
      schema: null,
      table: 't',
      position: {},
      order,
      snapshot: 'false',
      txId: null,
      commitTs: null,
    },
    key: { id },
    before: null,
    after: { id },
    unchanged: [],
    kafka: { topic: 't', partition: 0, offset, timestamp: 0 },
    capturedAt: null,
    processedAt: 0,
  };
}

/** A PostgreSQL order as decode/source.ts builds it: `pg:<phase>:<lastCommitLsn 20>:<lsn 20>`. */
const pg = (commit: number, lsn: number, phase = 1) =>
  `pg:${phase}:${String(phase === 0 ? 0 : commit).padStart(20, '0')}:${String(lsn).padStart(20, '0')}`;

describe('compareOrder', () => {
  it.each([
    [pg(1, 5), pg(1, 6), -1],
    [pg(2, 1), pg(1, 9), 1],
    [pg(2, 1), pg(2, 1), 0],
    [pg(9, 1), pg(2, 8), 1], // later transaction, lower change LSN: later in the stream
    [pg(0, 5), pg(1, 6), undefined],
    [pg(0, 5), pg(0, 6), undefined],
    [pg(0, 5), pg(0, 5), 0],
    [pg(0, 900, 0), pg(0, 5), -1], // a snapshot read sorts below any streamed change
    [pg(0, 5, 0), pg(0, 6, 0), -1],
    [pg(0, 5, 0), pg(0, 5), -1], // the first streamed transaction (unknown commit) still follows the snapshot
    ['my:1:2:3', 'pg:1:2', undefined],
  ])('compares %s with %s as %s', (a, b, expected) => {
    expect(compareOrder(a, b)).toBe(expected);
  });

  it('places an incremental read before an update committed after its window, though the update has a lower LSN', () => {
    // Arrange: the chunk window closed at the high watermark (LSN 500) when the last commit was at 450; a transaction
    // that wrote the row at LSN 300 (before the chunk's SELECT) committed after the window, so its lastCommitLsn is
    // at least the watermark's commit (520).
    const read = pg(450, 500);
    const update = pg(520, 300);
    // Act + Assert: across rows (the dedupe) and per row (the sinks' plain string comparison)
    expect(compareOrder(update, read)).toBe(1);
    expect(compareOrder(read, update)).toBe(-1);
    expect(update > read).toBe(true);
  });

  it('places an incremental read after every change committed before its window', () => {
    const read = pg(450, 500);
    expect(compareOrder(pg(440, 449), read)).toBe(-1);
    expect(compareOrder(pg(450, 499), read)).toBe(-1); // the watermark's own transaction, written before it
    expect(pg(440, 449) < read).toBe(true);
  });
});

describe('PartitionDedupe', () => {
  it('treats offsets at or below the committed one as redelivered', () => {
    const d = new PartitionDedupe({ offset: 10, hw: pg(1, 1), hwIds: [], version: 1 });
    expect(d.isRedelivered(10)).toBe(true);
    expect(d.isRedelivered(11)).toBe(false);
  });

  it('judges changes below the high-water order as duplicates (Debezium re-emission)', () => {
    const d = new PartitionDedupe({ offset: 10, hw: pg(5, 50), hwIds: [digestId('b')], version: 1 });
    expect(d.judge(change('a', pg(5, 40), 11))).toBe('duplicate');
    expect(d.judge(change('b', pg(5, 50), 12))).toBe('duplicate');
    expect(d.judge(change('c', pg(5, 50), 13))).toBe('new'); // another row at the same position (snapshot)
    expect(d.judge(change('d', pg(6, 60), 14))).toBe('new');
  });

  it('judges a change without its commit part a duplicate once a later transaction was applied, and keeps the high-water order', () => {
    // Arrange: the first transaction after the initial snapshot carries no lastCommitLsn; a connector that crashed
    // before saving any commit re-emits it after later transactions were applied
    const d = new PartitionDedupe({ offset: 10, hw: pg(5, 50), hwIds: [], version: 1 });
    // Act + Assert
    expect(d.judge(change('first', pg(0, 60), 11))).toBe('duplicate');
    expect(d.judge(change('replayed', pg(5, 40), 12))).toBe('duplicate');
    expect(d.judge(change('next', pg(6, 70), 13))).toBe('new');
    expect(d.next(undefined).hw).toBe(pg(6, 70));
  });

  it('applies the first transaction without its commit part while nothing with one was applied yet', () => {
    const d = new PartitionDedupe({ offset: 10, hw: pg(0, 40), hwIds: [], version: 1 });
    expect(d.judge(change('a', pg(0, 45), 11))).toBe('new');
  });

  it('builds the next checkpoint: last offset, high-water order, digests of ids at it, next version', () => {
    // Arrange
    const previous: Checkpoint = { offset: 3, hw: pg(1, 1), hwIds: [], version: 7, sinkState: { s: 1 } };
    const d = new PartitionDedupe(previous);
    d.judge(change('a', pg(2, 2), 4));
    d.judge(change('b', pg(3, 3), 5));
    d.judge(change('c', pg(3, 3), 6));
    d.pass(7);
    // Act
    const next = d.next({ s: 2 });
    // Assert
    expect(next).toEqual({
      offset: 7,
      hw: pg(3, 3),
      hwIds: [digestId('b'), digestId('c')],
      version: 8,
      sinkState: { s: 2 },
    });
  });

  it('bounds the ids kept for one position', () => {
    const d = new PartitionDedupe(undefined);
    for (let i = 0; i < HW_IDS_LIMIT + 50; i++) d.judge(change(`row-${i}`, pg(1, 1), i));
    expect(d.next(undefined).hwIds).toHaveLength(HW_IDS_LIMIT);
  });

  it('needs no commit when every record was redelivered', () => {
    const d = new PartitionDedupe({ offset: 10, hw: '', hwIds: [], version: 1 });
    d.isRedelivered(5);
    expect(d.changed).toBe(false);
  });
});

describe('RedriveDedupe', () => {
  it('applies every change again, once per id, and keeps the checkpoint position while taking the new sink state', () => {
    // Arrange
    const previous: Checkpoint = { offset: 90, hw: pg(9, 900), hwIds: ['x'], version: 4, sinkState: { seq: 1 } };
    const d = new RedriveDedupe(previous);
    // Act + Assert
    expect(d.isRedelivered(3)).toBe(false);
    expect(d.judge(change('old', pg(1, 10), 3))).toBe('new');
    expect(d.judge(change('old', pg(1, 10), 3))).toBe('duplicate');
    expect(d.next({ seq: 2 })).toEqual({ offset: 90, hw: pg(9, 900), hwIds: ['x'], version: 5, sinkState: { seq: 2 } });
  });
});

describe('AppliedSchemas', () => {
  const base: Checkpoint = { offset: 1, hw: '', hwIds: [], version: 1 };

  it('remembers a fingerprint per table and says when a table carries the one applied for it', () => {
    // Arrange
    const applied = new AppliedSchemas(undefined, 'pg.unlisted');
    // Act
    const firsts = [applied.see('pg.s.a', 'f1'), applied.see('pg.s.b', 'f1')];
    const again = [applied.see('pg.s.a', 'f1'), applied.see('pg.s.b', 'f2')];
    // Assert
    expect(firsts).toEqual([false, false]);
    expect(again).toEqual([true, false]);
    expect(applied.toCheckpoint()).toEqual({ 'pg.s.a': 'f1', 'pg.s.b': 'f2' });
  });

  it(`keeps the ${SCHEMAS_LIMIT} most recently seen tables`, () => {
    // Arrange
    const applied = new AppliedSchemas(undefined, 'pg.unlisted');
    const tables = Array.from({ length: SCHEMAS_LIMIT + 6 }, (_, i) => `pg.s.t${i}`);
    for (const t of tables) applied.see(t, 'f');
    // Act: the first table seen again
    applied.see('pg.s.t0', 'f');
    // Assert
    const kept = Object.keys(applied.toCheckpoint() ?? {});
    expect(kept).toHaveLength(SCHEMAS_LIMIT);
    expect(kept.at(-1)).toBe('pg.s.t0');
    expect(kept[0]).toBe(`pg.s.t${tables.length - SCHEMAS_LIMIT + 1}`);
  });

  it('reads a single-fingerprint checkpoint as the fingerprint of the table named like its topic', () => {
    // Arrange
    const applied = new AppliedSchemas({ ...base, schema: 'f1' }, 'pg.public.orders');
    // Act + Assert
    expect(applied.see('pg.public.customers', 'f1')).toBe(false);
    expect(applied.see('pg.public.orders', 'f1')).toBe(true);
  });

  it('prefers per-table fingerprints over the legacy one, and has nothing for the checkpoint when none is known', () => {
    // Arrange
    const applied = new AppliedSchemas({ ...base, schema: 'old', schemas: { 'pg.public.orders': 'new' } }, 'x');
    // Act + Assert
    expect(applied.see('pg.public.orders', 'new')).toBe(true);
    expect(new AppliedSchemas(base, 'pg.public.orders').toCheckpoint()).toBeUndefined();
  });
});
