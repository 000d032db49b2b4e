import { createAuditSink } from '../../functions/audit/sink';
import { createCacheSink } from '../../functions/cache/sink';
import type { Lane } from '../../functions/core/types';
import type { SinkFactory } from '../../functions/shared/lane-deps';
import { createWarehouseSink } from '../../functions/warehouse/sink';

/** Every lane's sink factory, for tools that run any lane (invoke, the local runner). Handlers import their own. */
export const SINKS: { [L in Lane]: SinkFactory<L> } = {
  warehouse: createWarehouseSink,
  cache: createCacheSink,
  audit: createAuditSink,
};
