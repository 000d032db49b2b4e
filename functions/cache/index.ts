import { createLaneHandler } from '../shared/lane-handler';
import { createCacheSink } from './sink';

/**
 * The cache lane: MSK-triggered (one event source mapping per source topic, consumer group per lane and topic).
 * Wiring only; the work is in ../core and the sink in ./sink.ts. Each lane imports only its own sink, so its
 * bundle carries only the clients it uses.
 */
export const handler = createLaneHandler('cache', createCacheSink);
