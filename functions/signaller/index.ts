import { createSignallerHandler } from './handler';

/**
 * The signaller function: SQS-triggered by the signals queue the lanes write to, produces Debezium `execute-snapshot`
 * signals to the connectors' Kafka signal topics. Wiring only; see ./handler.ts. The only function with a Kafka
 * client, so the lanes' cold start does not pay for one.
 */
export const handler = createSignallerHandler();
