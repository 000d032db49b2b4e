import { createHash } from 'node:crypto';
import * as z from 'zod/mini';
import './zod';
import { changeId, tableIdOf } from './change';
import type { ChangeEvent, Lane, Row } from './types';

/**
 * Per-table rules from typed config (`TABLE_RULES`): which tables a lane takes, which columns it keeps, and how PII
 * columns are protected. Table patterns are globs (`*` = any run of characters) matched against the short name
 * (`<schema|db>.<table>`, e.g. `public.customers`) and the full id (`<prefix>.<schema>.<table>`).
 */
const PiiAction = z.enum(['sha256', 'mask', 'drop', 'null']);
export type PiiAction = z.infer<typeof PiiAction>;

export const ColumnRulesSchema = z.object({
  /** Keep only these columns (key columns are always kept). */
  include: z.optional(z.array(z.string())),
  exclude: z._default(z.array(z.string()), []),
  /** `sha256`: salted hex digest; `mask`: all but the last 4 characters replaced by `*`; `drop`; `null`. */
  pii: z._default(z.record(z.string(), PiiAction), {}),
});

export const TableRulesSchema = z.object({
  /** When given, only matching tables pass; others are skipped with reason `table-excluded`. */
  include: z.optional(z.array(z.string())),
  exclude: z._default(z.array(z.string()), []),
  /** Column rules per table pattern; every matching entry applies, in order. */
  columns: z._default(z.record(z.string(), ColumnRulesSchema), {}),
});
export type TableRules = z.infer<typeof TableRulesSchema>;

function globToRegExp(glob: string): RegExp {
  const escaped = glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${escaped}$`);
}

interface TablePlan {
  excluded: boolean;
  include: Set<string> | undefined;
  exclude: Set<string>;
  pii: Map<string, PiiAction>;
}

export interface Enricher {
  /** Applies the rules in place. Returns false when the table is excluded (the event is then skipped). */
  apply(event: ChangeEvent): boolean;
}

/** Compiles the rules once; plans per table are built on first sight and cached. */
export function createEnricher(rules: TableRules | undefined, options: { lane: Lane; salt?: string }): Enricher {
  const include = rules?.include?.map(globToRegExp);
  const exclude = (rules?.exclude ?? []).map(globToRegExp);
  const columnRules = Object.entries(rules?.columns ?? {}).map(([glob, r]) => ({
    pattern: globToRegExp(glob),
    rules: r,
  }));
  const plans = new Map<string, TablePlan | null>();
  const salt = options.salt ?? '';

  const planFor = (event: ChangeEvent): TablePlan | null => {
    const fullId = tableIdOf(event.source);
    const cached = plans.get(fullId);
    if (cached !== undefined) return cached;
    const shortId = `${event.source.schema ?? event.source.db}.${event.source.table}`;
    const matches = (re: RegExp) => re.test(shortId) || re.test(fullId);
    const excluded = (include !== undefined && !include.some(matches)) || exclude.some(matches);
    let plan: TablePlan | null = null;
    const applicable = columnRules.filter((c) => matches(c.pattern));
    if (excluded || applicable.length > 0) {
      plan = { excluded, include: undefined, exclude: new Set(), pii: new Map() };
      for (const { rules: r } of applicable) {
        if (r.include) plan.include = new Set([...(plan.include ?? []), ...r.include]);
        for (const c of r.exclude) plan.exclude.add(c);
        for (const [c, action] of Object.entries(r.pii)) plan.pii.set(c, action);
      }
    }
    plans.set(fullId, plan);
    return plan;
  };

  const protect = (value: unknown, action: PiiAction): unknown => {
    if (value === null || value === undefined) return value;
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    switch (action) {
      case 'sha256':
        return createHash('sha256').update(salt).update(text).digest('hex');
      case 'mask':
        return text.length <= 4 ? '*'.repeat(text.length) : '*'.repeat(text.length - 4) + text.slice(-4);
      case 'null':
        return null;
      case 'drop':
        return undefined;
    }
  };

  const applyToRow = (row: Row | null, plan: TablePlan, keyColumns: Set<string>): void => {
    if (!row) return;
    for (const column of Object.keys(row)) {
      const dropped =
        !keyColumns.has(column) &&
        ((plan.include !== undefined && !plan.include.has(column)) || plan.exclude.has(column));
      if (dropped) {
        delete row[column];
        continue;
      }
      const action = plan.pii.get(column);
      if (action === undefined) continue;
      // A key column cannot be dropped or nulled without losing the row's identity: it is hashed instead.
      const effective = keyColumns.has(column) && (action === 'drop' || action === 'null') ? 'sha256' : action;
      const protectedValue = protect(row[column], effective);
      if (protectedValue === undefined) delete row[column];
      else row[column] = protectedValue;
    }
  };

  return {
    apply(event) {
      event.lane = options.lane;
      const plan = planFor(event);
      if (plan === null) return true;
      if (plan.excluded) return false;
      const keyColumns = new Set(event.key ? Object.keys(event.key) : []);
      applyToRow(event.before, plan, keyColumns);
      applyToRow(event.after, plan, keyColumns);
      if (event.unchanged.length > 0) {
        event.unchanged = event.unchanged.filter(
          (c) => keyColumns.has(c) || ((plan.include === undefined || plan.include.has(c)) && !plan.exclude.has(c)),
        );
      }
      if (event.key && [...keyColumns].some((c) => plan.pii.has(c))) {
        applyToRow(event.key, plan, keyColumns);
        // The id embeds the key: recompute it so no raw PII value survives in ids (dedupe state, audit, warehouse).
        event.id = changeId(event.source, event.key);
      }
      return true;
    },
  };
}
