/**
 * How far each lane got, from its checkpoints in the dedupe table (`cp#<lane>#<topic>#<partition>`, the last Kafka
 * offset it committed per topic-partition: functions/adapters/dynamodb-dedupe-store.ts). A rebuild needs two answers
 * from them while the lanes run:
 *
 * - has the audit log caught up with the sink's lane? A change the lane applied just before the sink was lost may not
 *   be audited yet (the lanes read the stream independently); the rebuild waits until the audit lane has committed at
 *   least the offsets the sink's lane had, so that everything the lost sink held is in what it reads.
 * - which changes will the warehouse lane still write itself? Those past its committed offset: a rebuild that wrote
 *   them too would put them in the change log twice.
 */
import { type AttributeValue, type DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { checkpointKey } from '../../functions/adapters/dynamodb-dedupe-store';
import type { Lane } from '../../functions/core/types';

/** Committed Kafka offsets of one lane, by `<topic>#<partition>` (see {@link partitionKey}). */
export type LaneOffsets = Map<string, number>;

export function partitionKey(topic: string, partition: number): string {
  return `${topic}#${partition}`;
}

/** Reads the lanes' committed offsets. */
export interface LaneCheckpoints {
  offsets(lane: Lane): Promise<LaneOffsets>;
}

/** The checkpoints in the lanes' DynamoDB dedupe table: a Scan (one small item per lane and topic-partition). */
export function dynamoCheckpoints(client: DynamoDBClient, tableName: string): LaneCheckpoints {
  return {
    async offsets(lane) {
      // checkpointKey with an empty topic is the lane's prefix: `cp#<lane>#`.
      const prefix = checkpointKey(lane, { topic: '', partition: 0 }).slice(0, -'#0'.length);
      const offsets: LaneOffsets = new Map();
      let start: Record<string, AttributeValue> | undefined;
      do {
        const page = await client.send(
          new ScanCommand({
            TableName: tableName,
            ConsistentRead: true,
            FilterExpression: 'begins_with(pk, :p)',
            ExpressionAttributeValues: { ':p': { S: prefix } },
            ProjectionExpression: 'pk, #o',
            ExpressionAttributeNames: { '#o': 'offset' },
            ExclusiveStartKey: start,
          }),
        );
        for (const item of page.Items ?? []) {
          const rest = (item.pk?.S ?? '').slice(prefix.length);
          const hash = rest.lastIndexOf('#');
          const offset = Number(item.offset?.N);
          if (hash > 0 && Number.isFinite(offset)) {
            offsets.set(partitionKey(rest.slice(0, hash), Number(rest.slice(hash + 1))), offset);
          }
        }
        start = page.LastEvaluatedKey;
      } while (start);
      return offsets;
    },
  };
}

/** The audit lane has not caught up with the sink's lane in time. */
export class AuditBehindError extends Error {
  override readonly name = 'AuditBehindError';
}

export interface WaitOptions {
  timeoutMs: number;
  pollMs?: number;
  sleep?: (ms: number) => Promise<void>;
  log?: (message: string) => void;
}

/**
 * Waits until the audit lane has committed, on every topic-partition `relevant` says yes to, at least the offset
 * `lane` has committed there now. Returns `lane`'s offsets (read once, at the start).
 */
export async function waitForAudit(
  checkpoints: LaneCheckpoints,
  lane: Lane,
  relevant: (topic: string) => boolean,
  options: WaitOptions,
): Promise<LaneOffsets> {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const target = new Map(
    [...(await checkpoints.offsets(lane))].filter(([k]) => relevant(k.slice(0, k.lastIndexOf('#')))),
  );
  const deadline = Date.now() + options.timeoutMs;
  let told = false;
  for (;;) {
    const audit = await checkpoints.offsets('audit');
    const behind = [...target].filter(([k, offset]) => (audit.get(k) ?? -1) < offset);
    if (behind.length === 0) return target;
    const list = behind.map(
      ([k, offset]) => `${k.replace('#', '-')} (audit at ${audit.get(k) ?? 'nothing'}, ${lane} at ${offset})`,
    );
    if (Date.now() >= deadline) {
      throw new AuditBehindError(
        `the audit lane is behind the ${lane} lane on ${list.join(', ')}: what the ${lane} held may not be audited yet; try again when it caught up (npm run status)`,
      );
    }
    if (!told)
      options.log?.(`waiting for the audit lane to catch up with the ${lane} lane on ${behind.length} partition(s)…`);
    told = true;
    await sleep(options.pollMs ?? 200);
  }
}
