import { createLaneHandler } from '../shared/lane-handler';

/** The audit lane: MSK-triggered, one consumer group per source topic. Wiring only; the work is in ../core. */
export const handler = createLaneHandler('audit');
