import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalRegistry, startLocalRegistry } from '../../tools/local/registry/server';

const V1 = JSON.stringify({
  type: 'record',
  name: 'Value',
  namespace: 'pg.public.t',
  fields: [{ name: 'id', type: 'int' }],
});
const V2 = JSON.stringify({
  type: 'record',
  name: 'Value',
  namespace: 'pg.public.t',
  fields: [
    { name: 'id', type: 'int' },
    { name: 'note', type: ['null', 'string'], default: null },
  ],
});
const BREAKING = JSON.stringify({
  type: 'record',
  name: 'Value',
  namespace: 'pg.public.t',
  fields: [{ name: 'id', type: 'string' }],
});

describe('local Confluent-compatible registry', () => {
  let registry: LocalRegistry;
  const call = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${registry.url}${path}`, {
      method,
      headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  beforeAll(async () => {
    registry = await startLocalRegistry();
  });
  afterAll(() => registry.close());

  it('registers a schema once: the same schema gets the same id in any subject', async () => {
    // Act
    const first = await call('POST', '/subjects/t-value/versions', { schema: V1 });
    const again = await call('POST', '/subjects/t-value/versions', { schema: V1 });
    const elsewhere = await call('POST', '/subjects/u-value/versions', { schema: V1 });
    // Assert
    expect(first).toEqual({ status: 200, body: { id: 1 } });
    expect(again.body).toEqual({ id: 1 });
    expect(elsewhere.body).toEqual({ id: 1 });
    expect((await call('GET', '/schemas/ids/1')).body).toEqual({ schema: V1 });
  });

  it('lists subjects and versions, and looks a schema up', async () => {
    // Arrange
    await call('POST', '/subjects/t-value/versions', { schema: V2 });
    // Act
    const subjects = await call('GET', '/subjects');
    const versions = await call('GET', '/subjects/t-value/versions');
    const latest = await call('GET', '/subjects/t-value/versions/latest');
    const lookup = await call('POST', '/subjects/t-value', { schema: V1 });
    // Assert
    expect(subjects.body).toEqual(['t-value', 'u-value']);
    expect(versions.body).toEqual([1, 2]);
    expect(latest.body).toEqual({ subject: 't-value', version: 2, id: 2, schema: V2 });
    expect(lookup.body).toEqual({ subject: 't-value', version: 1, id: 1, schema: V1 });
  });

  it('refuses an incompatible registration with 409 and Confluent’s error body', async () => {
    // Act
    const refused = await call('POST', '/subjects/t-value/versions', { schema: BREAKING });
    const check = await call('POST', '/compatibility/subjects/t-value/versions/latest', { schema: BREAKING });
    // Assert
    expect(refused.status).toBe(409);
    expect(refused.body.error_code).toBe(409);
    expect(refused.body.message).toMatch(/id: TYPE_MISMATCH/);
    expect(check.body).toEqual({ is_compatible: false, messages: [expect.stringMatching(/^id: TYPE_MISMATCH/)] });
  });

  it('takes per-subject compatibility levels', async () => {
    // Act
    const set = await call('PUT', '/config/t-value', { compatibility: 'NONE' });
    const read = await call('GET', '/config/t-value');
    const unset = await call('GET', '/config/u-value');
    const fallback = await call('GET', '/config/u-value?defaultToGlobal=true');
    const accepted = await call('POST', '/subjects/t-value/versions', { schema: BREAKING });
    const bad = await call('PUT', '/config', { compatibility: 'SOMETIMES' });
    // Assert
    expect(set.body).toEqual({ compatibility: 'NONE' });
    expect(read.body).toEqual({ compatibilityLevel: 'NONE' });
    expect(unset).toEqual({ status: 404, body: expect.objectContaining({ error_code: 40408 }) });
    expect(fallback.body).toEqual({ compatibilityLevel: 'BACKWARD' });
    expect(accepted.status).toBe(200);
    expect(bad).toEqual({ status: 422, body: expect.objectContaining({ error_code: 42203 }) });
  });

  it.each([
    ['GET', '/subjects/nope/versions', undefined, 404, 40401],
    ['GET', '/schemas/ids/99', undefined, 404, 40403],
    ['GET', '/subjects/t-value/versions/9', undefined, 404, 40402],
    ['POST', '/subjects/t-value', { schema: '{"type":"record","name":"Other","fields":[]}' }, 404, 40403],
    ['POST', '/subjects/t-value/versions', { schema: '{"type":"nonsense"}' }, 422, 42201],
  ])('%s %s → %i %i', async (method, path, body, status, code) => {
    // Act
    const response = await call(method, path, body);
    // Assert
    expect(response.status).toBe(status);
    expect(response.body).toEqual({ error_code: code, message: expect.any(String) });
  });
});
