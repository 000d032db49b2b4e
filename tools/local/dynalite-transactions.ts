/**
 * dynalite with DynamoDB's `TransactWriteItems`, which dynalite 4 does not implement (its README lists transactions
 * as to do). The lanes commit all the checkpoints of a batch in one transaction (functions/adapters/
 * dynamodb-dedupe-store.ts), so the local pipeline needs it.
 *
 * What it does, as DynamoDB documents it (API_TransactWriteItems): up to 100 `Put`, `Update`, `Delete` and
 * `ConditionCheck` actions, on items of one or more tables, no two on the same item; every condition is checked
 * first, and either all actions apply or none does. A failed condition cancels the whole transaction with a
 * `TransactionCanceledException` whose `CancellationReasons` hold one entry per action, in order (`None`, or
 * `ConditionalCheckFailed` with the old item when `ReturnValuesOnConditionCheckFailure` is `ALL_OLD`).
 *
 * How: each action is validated by dynalite's own validations for the matching single-item operation (so expression
 * syntax, names and values are checked exactly as for PutItem, UpdateItem and DeleteItem); then the items' locks are
 * taken in one global order (dynalite's per-item locks, which its single-item operations take too, so nothing
 * interleaves), conditions are checked against the stored items, and the writes are applied by dynalite's own
 * operations. Not emulated: `ClientRequestToken` idempotency (a token is accepted and ignored), consumed capacity and
 * item collection metrics, the 4 MB aggregate size limit; a crash of this process halfway through the writes could
 * leave part of them applied (state is throw-away or local).
 */

import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import dynalite from 'dynalite';

const require = createRequire(import.meta.url);

// dynalite's internals (CommonJS, untyped): what a single-item operation uses.
type Callback<T = unknown> = (error: DynaliteError | null | undefined, result?: T) => void;
interface DynaliteError extends Error {
  statusCode?: number;
  body?: Record<string, unknown>;
  name: string;
}
type Item = Record<string, unknown>;
interface Table {
  TableName: string;
}
interface ItemDb {
  get(key: string, cb: Callback<Item>): void;
  lock(key: string, fn: (release: <F>(cb: F) => F) => void): void;
}
interface Store {
  getTable(name: string, cb: Callback<Table>): void;
  getItemDb(name: string): ItemDb;
}
interface Db {
  create(options: unknown): Store;
  createKey(item: Item, table: Table): string;
  validateItem(item: Item, table: Table): DynaliteError | null | undefined;
  validateKey(key: Item, table: Table): DynaliteError | null | undefined;
  checkConditional(data: ActionData, existing: Item | undefined): DynaliteError | null | undefined;
  validationError(message: string): DynaliteError;
}
interface Validation {
  types: Record<string, unknown>;
  custom: (data: ActionData, store: Store) => string | undefined;
}
interface Validations {
  checkTypes(data: unknown, types: Record<string, unknown>): ActionData;
  checkValidations(data: ActionData, types: Record<string, unknown>, custom: Validation['custom'], store: Store): void;
}
type Operation = (store: Store, data: ActionData, cb: Callback) => void;
interface ActionData {
  TableName: string;
  Item?: Item;
  Key?: Item;
  ConditionExpression?: string;
  [field: string]: unknown;
}

const db = require('dynalite/db') as Db;
const validations = require('dynalite/validations') as Validations;

const KINDS = ['Put', 'Update', 'Delete', 'ConditionCheck'] as const;
type Kind = (typeof KINDS)[number];
/** The single-item operation whose validation (and, but for ConditionCheck, whose write) each action reuses. */
const OPERATION: Record<Kind, 'putItem' | 'updateItem' | 'deleteItem'> = {
  Put: 'putItem',
  Update: 'updateItem',
  Delete: 'deleteItem',
  ConditionCheck: 'deleteItem',
};
const RULES = Object.fromEntries(
  KINDS.map((k) => [k, require(`dynalite/validations/${OPERATION[k]}`) as Validation]),
) as Record<Kind, Validation>;
const WRITE = Object.fromEntries(
  KINDS.map((k) => [k, require(`dynalite/actions/${OPERATION[k]}`) as Operation]),
) as Record<Kind, Operation>;
const MAX_ACTIONS = 100;
const TARGET = 'DynamoDB_20120810.TransactWriteItems';

interface Action {
  kind: Kind;
  data: ActionData;
  returnOldOnFailure: boolean;
  table: Table;
  key: string;
  /** Table and key: what tells two actions' items apart, and the order their locks are taken in. */
  id: string;
}

class RequestError extends Error {
  constructor(
    readonly statusCode: number,
    readonly body: Record<string, unknown>,
  ) {
    super(String(body.message ?? body.Message ?? body.__type));
  }
}

const validation = (message: string) =>
  new RequestError(400, { __type: 'com.amazon.coral.validate#ValidationException', message });

function asRequestError(error: unknown): RequestError {
  if (error instanceof RequestError) return error;
  const e = error as DynaliteError;
  if (e?.statusCode && e.body) return new RequestError(e.statusCode, e.body);
  return new RequestError(500, { __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError', message: String(e) });
}

const call = <T>(fn: (cb: Callback<T>) => void) =>
  new Promise<T | undefined>((resolve, reject) => fn((error, result) => (error ? reject(error) : resolve(result))));

/** Parses and validates one action as dynalite validates the single-item operation it stands for. */
async function parseAction(store: Store, raw: unknown, index: number): Promise<Action> {
  const entry = (raw ?? {}) as Record<string, unknown>;
  const kinds = KINDS.filter((k) => entry[k] != null);
  const kind = kinds[0];
  if (kinds.length !== 1 || !kind) {
    throw validation(`TransactItems[${index}] must have exactly one of ${KINDS.join(', ')}`);
  }
  const body = { ...(entry[kind] as Record<string, unknown>) };
  const returnOldOnFailure = body.ReturnValuesOnConditionCheckFailure === 'ALL_OLD';
  delete body.ReturnValuesOnConditionCheckFailure;
  if (kind === 'ConditionCheck' && typeof body.ConditionExpression !== 'string') {
    throw validation(`TransactItems[${index}].ConditionCheck requires a ConditionExpression`);
  }
  const rules = RULES[kind];
  let data: ActionData;
  try {
    data = validations.checkTypes(body, rules.types);
    validations.checkValidations(data, rules.types, rules.custom, store);
  } catch (error) {
    throw asRequestError(error);
  }
  const table = (await call<Table>((cb) => store.getTable(data.TableName, cb)).catch((error) => {
    throw asRequestError(error);
  })) as Table;
  const itemOrKey = (kind === 'Put' ? data.Item : data.Key) as Item;
  const invalid = kind === 'Put' ? db.validateItem(itemOrKey, table) : db.validateKey(itemOrKey, table);
  if (invalid) throw asRequestError(invalid);
  const key = db.createKey(itemOrKey, table);
  return { kind, data, returnOldOnFailure, table, key, id: `${table.TableName}\u0000${key}` };
}

/** Holds the items' locks (in one global order, so that two transactions cannot deadlock) while `work` runs. */
async function withLocks<T>(store: Store, actions: readonly Action[], work: () => Promise<T>): Promise<T> {
  const order = [...actions].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const releases: Array<() => void> = [];
  try {
    for (const action of order) {
      releases.push(
        await new Promise<() => void>((resolve) =>
          store.getItemDb(action.table.TableName).lock(action.key, (release) => resolve(release(() => undefined))),
        ),
      );
    }
    return await work();
  } finally {
    for (const release of releases.reverse()) release();
  }
}

/** The store as the single-item operations see it inside a transaction: the locks are already held. */
function lockedView(store: Store): Store {
  const view = Object.create(store) as Store;
  view.getItemDb = (name) => {
    const itemDb = Object.create(store.getItemDb(name)) as ItemDb;
    itemDb.lock = (_key, fn) => fn((cb) => cb);
    return itemDb;
  };
  return view;
}

async function transactWriteItems(store: Store, input: unknown): Promise<Record<string, unknown>> {
  const items = (input as { TransactItems?: unknown } | null)?.TransactItems;
  if (!Array.isArray(items) || items.length === 0) {
    throw validation('1 validation error detected: TransactItems must have length greater than or equal to 1');
  }
  if (items.length > MAX_ACTIONS) {
    throw validation(
      `1 validation error detected: Value at 'transactItems' failed to satisfy constraint: Member must have length less than or equal to ${MAX_ACTIONS}`,
    );
  }
  const actions: Action[] = [];
  for (const [i, raw] of items.entries()) actions.push(await parseAction(store, raw, i));
  const seen = new Set<string>();
  for (const { id } of actions) {
    if (seen.has(id)) throw validation('Transaction request cannot include multiple operations on one item');
    seen.add(id);
  }

  return withLocks(store, actions, async () => {
    const reasons: Array<Record<string, unknown>> = [];
    let cancelled = false;
    for (const action of actions) {
      const existing = await call<Item>((cb) =>
        store
          .getItemDb(action.table.TableName)
          .get(action.key, (error, item) =>
            error && error.name !== 'NotFoundError' ? cb(error) : cb(null, error ? undefined : item),
          ),
      );
      if (db.checkConditional(action.data, existing)) {
        cancelled = true;
        reasons.push({
          Code: 'ConditionalCheckFailed',
          Message: 'The conditional request failed',
          ...(action.returnOldOnFailure && existing ? { Item: existing } : {}),
        });
      } else {
        reasons.push({ Code: 'None' });
      }
    }
    if (cancelled) {
      throw new RequestError(400, {
        __type: 'com.amazonaws.dynamodb.v20120810#TransactionCanceledException',
        Message: `Transaction cancelled, please refer cancellation reasons for specific reasons [${reasons.map((r) => r.Code).join(', ')}]`,
        CancellationReasons: reasons,
      });
    }
    const view = lockedView(store);
    for (const action of actions) {
      if (action.kind === 'ConditionCheck') continue;
      await call((cb) => WRITE[action.kind](view, action.data, cb));
    }
    return {};
  });
}

function send(res: ServerResponse, statusCode: number, body: Record<string, unknown>): void {
  const text = JSON.stringify(body);
  res.statusCode = statusCode;
  res.setHeader('Content-Type', 'application/x-amz-json-1.0');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.setHeader('x-amzn-RequestId', `local-${Date.now().toString(36)}${Math.random().toString(36).slice(2)}`);
  res.end(text);
}

function handle(store: Store, req: IncomingMessage, res: ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('error', () => res.destroy());
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    let input: unknown;
    try {
      input = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      send(res, 400, { __type: 'com.amazon.coral.service#SerializationException' });
      return;
    }
    transactWriteItems(store, input).then(
      (output) => send(res, 200, output),
      (error: unknown) => {
        const e = asRequestError(error);
        send(res, e.statusCode, e.body);
      },
    );
  });
}

/** `dynalite(options)` whose server also answers `TransactWriteItems`. */
export function dynaliteWithTransactions(options: Parameters<typeof dynalite>[0]): Server {
  // dynalite keeps its store private; catch it as dynalite creates it.
  const create = db.create;
  let store: Store | undefined;
  db.create = (o) => {
    store = create(o);
    return store;
  };
  let server: Server;
  try {
    server = dynalite(options) as Server;
  } finally {
    db.create = create;
  }
  const captured = store;
  if (!captured) throw new Error('dynalite did not create its store through db.create');
  const listeners = server.listeners('request') as Array<(req: IncomingMessage, res: ServerResponse) => void>;
  server.removeAllListeners('request');
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (req.method === 'POST' && req.headers['x-amz-target'] === TARGET) handle(captured, req, res);
    else for (const listener of listeners) listener.call(server, req, res);
  });
  return server;
}
