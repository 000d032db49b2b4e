import { createCompactionHandler } from './handler';

/**
 * The compaction function: EventBridge Scheduler runs it hourly to rewrite each closed day of the warehouse change log
 * as one Parquet file per schema. Wiring only; see ./handler.ts and ./compact.ts.
 */
export const handler = createCompactionHandler();
