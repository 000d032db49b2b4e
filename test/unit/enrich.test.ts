import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { JsonDebeziumDecoder } from '../../functions/core/decode';
import { createEnricher, TableRulesSchema } from '../../functions/core/enrich';
import type { ChangeEvent } from '../../functions/core/types';
import { pgMessage, recordOf } from '../support/builders';

function customer(key: Record<string, unknown> = { id: 1 }): ChangeEvent {
  const outcome = new JsonDebeziumDecoder().decode(
    recordOf(
      pgMessage({
        op: 'u',
        table: 'customers',
        key,
        before: { id: 1, email: 'ann@example.com', ssn: '123-45-6789', phone: '5551234567', notes: 'x' },
        after: { id: 1, email: 'ann@example.com', ssn: '123-45-6789', phone: '5551234567', notes: 'y' },
        lsn: 5,
      }),
    ),
    1,
  );
  if (outcome.kind !== 'event') throw new Error('not an event');
  return outcome.event;
}

const sha = (salt: string, v: string) => createHash('sha256').update(salt).update(v).digest('hex');

describe('createEnricher', () => {
  it('hashes, masks, drops and nulls PII columns in before and after', () => {
    // Arrange
    const rules = TableRulesSchema.parse({
      columns: { 'public.customers': { pii: { email: 'sha256', ssn: 'drop', phone: 'mask', notes: 'null' } } },
    });
    const event = customer();
    // Act
    const kept = createEnricher(rules, { lane: 'cache', salt: 's' }).apply(event);
    // Assert
    expect(kept).toBe(true);
    expect(event.after).toEqual({ id: 1, email: sha('s', 'ann@example.com'), phone: '******4567', notes: null });
    expect(event.before).toEqual({ id: 1, email: sha('s', 'ann@example.com'), phone: '******4567', notes: null });
    expect(event.lane).toBe('cache');
  });

  it('hashes a PII key column everywhere, including the id, instead of dropping it', () => {
    const rules = TableRulesSchema.parse({ columns: { '*.customers': { pii: { email: 'drop' } } } });
    const event = customer({ email: 'ann@example.com' });
    createEnricher(rules, { lane: 'audit' }).apply(event);
    expect(event.key).toEqual({ email: sha('', 'ann@example.com') });
    expect(event.id).not.toContain('ann@example.com');
    expect(JSON.stringify(event)).not.toContain('ann@example.com');
  });

  it('keeps only included columns (and the key) or removes excluded ones', () => {
    const include = customer();
    createEnricher(TableRulesSchema.parse({ columns: { 'public.*': { include: ['email'] } } }), {
      lane: 'warehouse',
    }).apply(include);
    expect(include.after).toEqual({ id: 1, email: 'ann@example.com' });
    const exclude = customer();
    createEnricher(TableRulesSchema.parse({ columns: { 'pg.public.customers': { exclude: ['notes', 'ssn'] } } }), {
      lane: 'warehouse',
    }).apply(exclude);
    expect(exclude.after).toEqual({ id: 1, email: 'ann@example.com', phone: '5551234567' });
  });

  it.each([
    [{ include: ['public.orders'] }, false],
    [{ include: ['public.*'] }, true],
    [{ exclude: ['*.customers'] }, false],
    [{ exclude: ['public.orders'] }, true],
  ])('table rules %j let customers through: %s', (rules, expected) => {
    expect(createEnricher(TableRulesSchema.parse(rules), { lane: 'warehouse' }).apply(customer())).toBe(expected);
  });
});
