import { createAuditSink } from '../audit/sink';
import { createCacheSink } from '../cache/sink';
import type { Lane } from '../core/types';
import { createWarehouseSink } from '../warehouse/sink';
import type { SinkFactory } from './lane-deps';

/** Every lane's sink factory, for tools that run any lane (invoke, the local runner). Handlers import their own. */
export const SINKS: { [L in Lane]: SinkFactory<L> } = {
  warehouse: createWarehouseSink,
  cache: createCacheSink,
  audit: createAuditSink,
};
