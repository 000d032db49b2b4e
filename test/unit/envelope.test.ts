import { describe, expect, it } from 'vitest';
import { EnvelopeSchema, passesEnvelopeSchema } from '../../functions/core/decode/envelope';

const source = { connector: 'postgresql', name: 'pg', ts_ms: 1 };

describe('passesEnvelopeSchema (the fast path of EnvelopeSchema)', () => {
  it.each([
    [{ op: 'c', source, after: { id: 1 } }],
    [{ op: 'd', source, before: { id: 1 }, after: null, ts_ms: '1710498600000' }],
    [{ op: 't', source }],
    [{ op: 'u', source: { ...source, ts_ms: null }, after: {}, ts_ms: null }],
    [{ op: 'x', source, after: {} }],
    [{ op: 'c', source: null, after: {} }],
    [{ op: 'c', source: [], after: {} }],
    [{ op: 'c', source: { ...source, connector: '' }, after: {} }],
    [{ op: 'c', source: { ...source, name: 7 }, after: {} }],
    [{ op: 'c', source: { ...source, ts_ms: '12a' }, after: {} }],
    [{ op: 'c', source, after: [] }],
    [{ op: 'c', source, before: 'row', after: {} }],
    [{ op: 'c', source, after: {}, ts_ms: {} }],
    [{ op: 7, source, after: {} }],
  ])('agrees with zod on %j', (payload) => {
    expect(passesEnvelopeSchema(payload)).toBe(EnvelopeSchema.safeParse(payload).success);
  });
});
