/**
 * The demo workload: changes to the demo schema (tools/local/postgres.ts) at a target rate of row changes per
 * second, from a few connections at once, covering what the pipeline must get right: inserts, updates of ordinary
 * columns, updates that rewrite a TOASTed column and updates that leave it untouched (Debezium's placeholder path),
 * deletes, primary-key changes (delete + create in the change stream), multi-statement transactions, changes to the
 * keyless table (REPLICA IDENTITY FULL), one TRUNCATE half-way through and, a third of the way in, one schema change
 * the sinks cannot reconcile from the stream alone: `ADD COLUMN tier text NOT NULL DEFAULT 'standard'` on customers.
 * PostgreSQL fills existing rows with the default without writing them, so logical decoding never re-emits them; the
 * lanes see the new schema on the next customer change and ask for an incremental snapshot of the table, and every
 * customer reaches every sink with its tier. DML goes on meanwhile (the ALTER waits for the row locks of running
 * statements, and they for it, briefly: no deadlock, every transaction touches customers in one statement at most).
 *
 * Counting: the unit is a change event as the capture emits it, not a statement: an INSERT of 5 rows is 5, a
 * primary-key UPDATE of one row is 2 (delete + create), a TRUNCATE is 1 per table. Counts come from each
 * statement's row count, so they are exact even when a statement matches fewer rows than asked for.
 *
 * Concurrency: each connection owns a disjoint share of the rows (by key, or by a path tag for the keyless table),
 * so statements of different connections never wait on each other's row locks or deadlock; the TRUNCATE pauses
 * every connection first.
 */
import pg from 'pg';
import { demoRandom, demoUuid, toastableText } from '../postgres';

/** The operations of the workload; each is one transaction. */
export const WORKLOAD_OPS = [
  'insertCustomers',
  'updateCustomers',
  'placeOrder',
  'updateOrders',
  'repriceToastedProduct',
  'rewriteDescription',
  'deleteOrder',
  'deleteItem',
  'renumberItem',
  'insertPageViews',
  'updatePageViews',
  'deletePageViews',
  'truncate',
  'schemaChange',
] as const;
export type WorkloadOp = (typeof WORKLOAD_OPS)[number];

/** Relative frequency of each operation after the first round (which runs every one once). */
const WEIGHTS: Record<Exclude<WorkloadOp, 'truncate' | 'schemaChange'>, number> = {
  insertCustomers: 8,
  updateCustomers: 10,
  placeOrder: 12,
  updateOrders: 14,
  repriceToastedProduct: 4,
  rewriteDescription: 1,
  deleteOrder: 3,
  deleteItem: 3,
  renumberItem: 4,
  insertPageViews: 12,
  updatePageViews: 5,
  deletePageViews: 3,
};

export interface WorkloadOptions {
  connectionString: string;
  /** Schema holding the demo tables. @default 'public' */
  schema?: string;
  /** Target change events per second. */
  rate: number;
  durationMs: number;
  /** Connections. @default from the rate: 2 up to 8 */
  connections?: number;
  /** Rows per multi-row statement. @default from the rate and connections */
  rowsPerStatement?: number;
  /** One TRUNCATE of order_items and page_views at half time (then a few rows again). @default true */
  truncate?: boolean;
  /** One schema change at a third of the time: {@link SCHEMA_CHANGE_SQL}. @default true */
  schemaChange?: boolean;
  /** @default 7 */
  seed?: number;
  /** Called after every transaction with the running total. */
  onChanges?: (total: number) => void;
}

export interface WorkloadResult {
  /** Change events the capture should emit for what was done. */
  changes: number;
  transactions: number;
  /** Transactions per operation. */
  ops: Record<WorkloadOp, number>;
  /** Change events per operation. */
  changesByOp: Record<WorkloadOp, number>;
  connections: number;
  rowsPerStatement: number;
  elapsedMs: number;
  /** changes / elapsed: below the target when the machine cannot keep up. */
  achievedPerSec: number;
}

/** A running workload. */
export interface Workload {
  /** Resolves when the duration is over (or after `stop`) and every transaction has finished. */
  done: Promise<WorkloadResult>;
  /** Ends early; in-flight transactions finish. */
  stop(): void;
  /** Changes so far. */
  changes(): number;
}

interface Share {
  customers: string[];
  products: Array<{ id: string; toasted: boolean }>;
  orders: Map<string, number[]>;
  pageViews: number;
}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** The workload's schema change (`%s`: the customers table): a column with a default, which needs a backfill. */
export const SCHEMA_CHANGE_SQL = `ALTER TABLE %s ADD COLUMN IF NOT EXISTS tier text NOT NULL DEFAULT 'standard'`;
const STATUSES = ['pending', 'paid', 'shipped', 'delivered', 'cancelled'] as const;

/**
 * Starts the workload against a database that holds the demo schema (seeded or not). Rows that exist when it
 * starts are shared out between the connections.
 */
export function startWorkload(options: WorkloadOptions): Workload {
  const rate = options.rate;
  if (!(rate > 0)) throw new RangeError(`rate must be positive, got ${rate}`);
  // A connection manages a few hundred transactions per second: beyond that, more connections and more rows per
  // statement (the unit is changes, not statements).
  const connections = options.connections ?? Math.min(8, Math.max(2, Math.ceil(rate / 250)));
  const rowsPerStatement =
    options.rowsPerStatement ?? Math.max(1, Math.min(50, Math.round(rate / (connections * 100))));
  const schema = quote(options.schema ?? 'public');
  const t = (table: string) => `${schema}.${quote(table)}`;
  const ops = Object.fromEntries(WORKLOAD_OPS.map((op) => [op, 0])) as Record<WorkloadOp, number>;
  const changesByOp = Object.fromEntries(WORKLOAD_OPS.map((op) => [op, 0])) as Record<WorkloadOp, number>;
  let issued = 0;
  let done = 0;
  let transactions = 0;
  let stopped = false;
  let paused: Promise<void> | null = null;
  const inFlight = new Set<Promise<unknown>>();
  const startedAt = performance.now();
  const endAt = startedAt + options.durationMs;
  /** Pending sleeps, woken early by `stop()`. */
  const sleepers = new Set<() => void>();
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      sleepers.add(wake);
    });
  let shares: Share[] = [];

  const run = async (): Promise<WorkloadResult> => {
    const clients = Array.from({ length: connections }, () => new pg.Client(options.connectionString));
    // A connection lost between queries (the server restarting or shutting down, an administrator's terminate) is an
    // 'error' event, which would end the process with a raw stack trace if nobody listened. The next query on that
    // client fails with a clear error anyway, and that ends the workload.
    for (const client of clients) client.on('error', () => undefined);
    try {
      await Promise.all(clients.map((c) => c.connect()));
      shares = await loadShares(clients[0] as pg.Client, t, connections);
      const workers = clients.map((client, w) =>
        worker(client, w, shares[w] as Share, demoRandom((options.seed ?? 7) * 1000 + w)),
      );
      const truncation = options.truncate === false ? Promise.resolve() : truncateHalfWay(clients[0] as pg.Client);
      // Its own connection: the ALTER waits for the row locks of running statements, and must not hold up a worker.
      const alteration = options.schemaChange === false ? Promise.resolve() : alterAtAThird();
      await Promise.all([...workers, truncation, alteration]);
    } finally {
      for (const wake of [...sleepers]) wake();
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    }
    const elapsedMs = performance.now() - startedAt;
    return {
      changes: done,
      transactions,
      ops,
      changesByOp,
      connections,
      rowsPerStatement,
      elapsedMs: Math.round(elapsedMs),
      achievedPerSec: Math.round((done / Math.max(1, elapsedMs)) * 1000),
    };
  };

  const record = (op: WorkloadOp, changes: number) => {
    ops[op]++;
    changesByOp[op] += changes;
    transactions++;
    done += changes;
    options.onChanges?.(done);
  };

  /** Runs fn in a transaction; returns its change count. */
  const tx = async (client: pg.Client, fn: () => Promise<number>): Promise<number> => {
    await client.query('BEGIN');
    try {
      const n = await fn();
      await client.query('COMMIT');
      return n;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  };

  const count = (result: pg.QueryResult) => result.rowCount ?? 0;

  async function worker(client: pg.Client, w: number, share: Share, random: () => number): Promise<void> {
    const int = (n: number) => Math.floor(random() * n);
    const size = () => 1 + int(Math.max(1, 2 * rowsPerStatement - 1));
    const pickOwned = <T>(list: T[], n: number): T[] => {
      const out: T[] = [];
      for (let i = 0; i < n && list.length > 0; i++) out.push(list[int(list.length)] as T);
      return [...new Set(out)];
    };
    let serial = 0;
    const nextTag = () => `w${w}-${++serial}-${int(1e9)}`;

    const impl: Record<Exclude<WorkloadOp, 'truncate' | 'schemaChange'>, () => Promise<number>> = {
      insertCustomers: async () => {
        const n = size();
        const values: unknown[] = [];
        const rows = Array.from({ length: n }, () => {
          const tag = nextTag();
          const base = values.length;
          values.push(
            `${tag}@example.com`,
            `Customer ${tag}`,
            `${100 + int(800)}-${10 + int(89)}-${1000 + int(8999)}`,
            random() < 0.3 ? null : `+1-555-${String(int(10_000_000)).padStart(7, '0')}`,
            `19${50 + int(50)}-0${1 + int(9)}-1${int(10)}`,
          );
          return `($${base + 1}, $${base + 2}, $${base + 3}, $${base + 4}, $${base + 5})`;
        });
        const result = await client.query(
          `INSERT INTO ${t('customers')} (email, full_name, ssn, phone, birth_date) VALUES ${rows.join(', ')} RETURNING id`,
          values,
        );
        for (const row of result.rows as Array<{ id: string }>) share.customers.push(row.id);
        return count(result);
      },
      updateCustomers: async () => {
        const ids = pickOwned(share.customers, size());
        if (ids.length === 0) return impl.insertCustomers();
        return count(
          await client.query(
            `UPDATE ${t('customers')} SET phone = $2, updated_at = clock_timestamp()::timestamp(6) WHERE id = ANY($1::bigint[])`,
            [ids, `+1-555-${String(int(10_000_000)).padStart(7, '0')}`],
          ),
        );
      },
      placeOrder: () =>
        tx(client, async () => {
          // A multi-statement transaction: the order, its lines, then the total computed from the lines.
          const id = demoUuid(random);
          const customer = share.customers[int(share.customers.length)] ?? '1';
          let n = count(
            await client.query(
              `INSERT INTO ${t('orders')} (id, customer_id, status, notes) VALUES ($1, $2, 'pending', $3)`,
              [id, customer, random() < 0.5 ? null : `note ${nextTag()}`],
            ),
          );
          const lines = 1 + int(3);
          const product = share.products[int(share.products.length)]?.id ?? '1';
          const values: unknown[] = [id];
          const rows = Array.from({ length: lines }, (_, i) => {
            values.push(i + 1, product, 1 + int(5), (1 + random() * 200).toFixed(2));
            const b = values.length;
            return `($1, $${b - 3}, $${b - 2}, $${b - 1}, $${b})`;
          });
          n += count(
            await client.query(
              `INSERT INTO ${t('order_items')} (order_id, line_no, product_id, quantity, unit_price) VALUES ${rows.join(', ')}`,
              values,
            ),
          );
          n += count(
            await client.query(
              `UPDATE ${t('orders')} SET total = (SELECT coalesce(sum(quantity * unit_price), 0) FROM ${t('order_items')} WHERE order_id = $1) WHERE id = $1`,
              [id],
            ),
          );
          share.orders.set(
            id,
            Array.from({ length: lines }, (_, i) => i + 1),
          );
          return n;
        }),
      updateOrders: async () => {
        const ids = pickOwned([...share.orders.keys()], size());
        if (ids.length === 0) return impl.placeOrder();
        return count(
          await client.query(
            `UPDATE ${t('orders')} SET status = $2, placed_at = clock_timestamp() WHERE id = ANY($1::uuid[])`,
            [ids, STATUSES[int(STATUSES.length)]],
          ),
        );
      },
      repriceToastedProduct: async () => {
        // The description is stored out of line and not changed: pgoutput does not send it (unchanged TOAST).
        const toasted = share.products.filter((p) => p.toasted);
        if (toasted.length === 0) return impl.rewriteDescription();
        const ids = pickOwned(toasted, size()).map((p) => p.id);
        return count(
          await client.query(
            `UPDATE ${t('products')} SET price = round((random() * 999 + 1)::numeric, 2), attributes = jsonb_set(attributes, '{rank}', to_jsonb($2::int)) WHERE id = ANY($1::bigint[])`,
            [ids, int(1000)],
          ),
        );
      },
      rewriteDescription: async () => {
        const product = share.products[int(share.products.length)];
        if (!product) return 0;
        product.toasted = true;
        return count(
          await client.query(`UPDATE ${t('products')} SET description = $2, weight_kg = $3 WHERE id = $1`, [
            product.id,
            toastableText(random),
            (random() * 20).toFixed(3),
          ]),
        );
      },
      deleteOrder: () =>
        tx(client, async () => {
          const [id] = pickOwned([...share.orders.keys()], 1);
          if (id === undefined) return 0;
          share.orders.delete(id);
          const items = count(await client.query(`DELETE FROM ${t('order_items')} WHERE order_id = $1`, [id]));
          return items + count(await client.query(`DELETE FROM ${t('orders')} WHERE id = $1`, [id]));
        }),
      deleteItem: async () => {
        const withLines = [...share.orders].filter(([, lines]) => lines.length > 0);
        const entry = withLines[int(withLines.length)];
        if (!entry) return impl.placeOrder();
        const [id, lines] = entry;
        const line = lines.splice(int(lines.length), 1)[0];
        return count(
          await client.query(`DELETE FROM ${t('order_items')} WHERE order_id = $1 AND line_no = $2`, [id, line]),
        );
      },
      renumberItem: async () => {
        // A primary-key change: Debezium emits a delete of the old key and a create of the new one.
        const withLines = [...share.orders].filter(([, lines]) => lines.length > 0);
        const entry = withLines[int(withLines.length)];
        if (!entry) return impl.placeOrder();
        const [id, lines] = entry;
        const index = int(lines.length);
        const from = lines[index] as number;
        const to = Math.max(...lines) + 1;
        lines[index] = to;
        const result = await client.query(
          `UPDATE ${t('order_items')} SET line_no = $3, quantity = quantity + 1 WHERE order_id = $1 AND line_no = $2`,
          [id, from, to],
        );
        return 2 * count(result);
      },
      insertPageViews: async () => {
        const n = size();
        const values: unknown[] = [];
        const rows = Array.from({ length: n }, () => {
          values.push(
            share.customers[int(share.customers.length)] ?? null,
            `/w${w}/${['products', 'cart', 'checkout'][int(3)]}`,
            random() < 0.5 ? null : 'https://example.com/',
            int(10_000),
          );
          const b = values.length;
          return `($${b - 3}, $${b - 2}, $${b - 1}, $${b})`;
        });
        const result = await client.query(
          `INSERT INTO ${t('page_views')} (customer_id, path, referrer, duration_ms) VALUES ${rows.join(', ')}`,
          values,
        );
        share.pageViews += count(result);
        return count(result);
      },
      updatePageViews: async () => {
        // No key: rows are found by content; REPLICA IDENTITY FULL puts the whole old row in the change.
        if (share.pageViews === 0) return impl.insertPageViews();
        return count(
          await client.query(
            `UPDATE ${t('page_views')} SET duration_ms = duration_ms + 1 WHERE ctid = ANY(ARRAY(SELECT ctid FROM ${t('page_views')} WHERE path LIKE $1 LIMIT $2))`,
            [`/w${w}/%`, size()],
          ),
        );
      },
      deletePageViews: async () => {
        if (share.pageViews === 0) return impl.insertPageViews();
        const result = await client.query(
          `DELETE FROM ${t('page_views')} WHERE ctid = ANY(ARRAY(SELECT ctid FROM ${t('page_views')} WHERE path LIKE $1 LIMIT $2))`,
          [`/w${w}/%`, size()],
        );
        share.pageViews -= count(result);
        return count(result);
      },
    };

    const names = Object.keys(WEIGHTS) as Array<keyof typeof WEIGHTS>;
    const totalWeight = names.reduce((sum, op) => sum + WEIGHTS[op], 0);
    const choose = (): keyof typeof WEIGHTS => {
      let x = random() * totalWeight;
      for (const op of names) {
        x -= WEIGHTS[op];
        if (x < 0) return op;
      }
      return 'updateOrders';
    };
    // The first connection runs every operation once first, so even a tiny workload covers all of them.
    const tour = w === 0 ? [...names] : [];

    while (!stopped && performance.now() < endAt) {
      if (paused) await paused;
      if (stopped) break;
      // Pace by changes: each transaction may start once the changes issued so far are due at the target rate.
      const due = startedAt + (issued / rate) * 1000;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      if (stopped || performance.now() >= endAt) break;
      if (paused) continue;
      const op = tour.shift() ?? choose();
      const estimate = op === 'placeOrder' ? 4 : op === 'renumberItem' ? 2 : rowsPerStatement;
      issued += estimate;
      const work = impl[op]();
      inFlight.add(work);
      try {
        const n = await work;
        issued += n - estimate;
        record(op, n);
      } finally {
        inFlight.delete(work);
      }
    }
    stopped = true;
  }

  /** At a third of the time, without pausing the DML: the schema change (one DDL statement, no change event). */
  async function alterAtAThird(): Promise<void> {
    await sleep(options.durationMs / 3);
    if (stopped) return;
    const client = new pg.Client(options.connectionString);
    client.on('error', () => undefined);
    await client.connect();
    try {
      await client.query(SCHEMA_CHANGE_SQL.replace('%s', t('customers')));
      record('schemaChange', 0);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** At half time: pause every connection, TRUNCATE two tables (one keyed, the keyless one), then refill a little. */
  async function truncateHalfWay(client: pg.Client): Promise<void> {
    await sleep(options.durationMs / 2);
    if (stopped) return;
    let resume!: () => void;
    paused = new Promise((r) => {
      resume = r;
    });
    try {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
      await client.query(`TRUNCATE ${t('order_items')}, ${t('page_views')}`);
      record('truncate', 2);
      for (const share of shares) {
        for (const lines of share.orders.values()) lines.length = 0;
        share.pageViews = 0;
      }
      // Refill a little at once, so rows newer than the truncate exist even if the run ends soon after.
      const refill = await client.query(
        `INSERT INTO ${t('page_views')} (customer_id, path, duration_ms) VALUES (NULL, '/w0/after-truncate', 1), (NULL, '/w0/after-truncate', 2)`,
      );
      if (shares[0]) shares[0].pageViews += count(refill);
      record('insertPageViews', count(refill));
    } finally {
      paused = null;
      resume();
    }
  }

  async function loadShares(client: pg.Client, table: (name: string) => string, n: number): Promise<Share[]> {
    const loaded: Share[] = Array.from({ length: n }, () => ({
      customers: [],
      products: [],
      orders: new Map(),
      pageViews: 0,
    }));
    const customers = await client.query(`SELECT id FROM ${table('customers')} ORDER BY id`);
    (customers.rows as Array<{ id: string }>).forEach((r, i) => {
      loaded[i % n]?.customers.push(r.id);
    });
    const products = await client.query(
      `SELECT id, coalesce(length(description), 0) > 2000 AS toasted FROM ${table('products')} ORDER BY id`,
    );
    (products.rows as Array<{ id: string; toasted: boolean }>).forEach((r, i) => {
      loaded[i % n]?.products.push({ id: r.id, toasted: r.toasted });
    });
    const orders = await client.query(`SELECT id FROM ${table('orders')} ORDER BY id`);
    const owner = new Map<string, Share>();
    (orders.rows as Array<{ id: string }>).forEach((r, i) => {
      const share = loaded[i % n] as Share;
      share.orders.set(r.id, []);
      owner.set(r.id, share);
    });
    const items = await client.query(`SELECT order_id, line_no FROM ${table('order_items')} ORDER BY 1, 2`);
    for (const r of items.rows as Array<{ order_id: string; line_no: number }>) {
      owner.get(r.order_id)?.orders.get(r.order_id)?.push(r.line_no);
    }
    return loaded;
  }

  const result = run();
  result.catch(() => {
    stopped = true;
  });
  return {
    done: result,
    stop() {
      stopped = true;
      for (const wake of [...sleepers]) wake();
    },
    changes: () => done,
  };
}
