import { createCurrentStateHandler } from './handler';

/**
 * The current-state function: EventBridge Scheduler runs it to apply the warehouse's change log to the Iceberg
 * current-state tables through Athena, and once a day to compact them. Wiring only; see ./handler.ts.
 */
export const handler = createCurrentStateHandler();
