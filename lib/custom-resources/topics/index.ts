import { generateAuthToken } from 'aws-msk-iam-sasl-signer-js';
import { Kafka, logLevel, type OauthbearerProviderResponse } from 'kafkajs';

/**
 * Custom resource `Custom::MskServerlessTopics`: creates the data topics of an MSK Serverless cluster.
 *
 * Why a custom resource: AWS::MSK::Topic (the MSK topic API) only works on provisioned clusters, and MSK Serverless
 * does not auto-create topics. This function runs in the VPC, connects with IAM auth (SASL OAUTHBEARER, see
 * mskIamTokenProvider) and creates missing topics, grows partition counts, and never shrinks (Kafka cannot) or deletes
 * a topic unless told to on stack deletion.
 */

interface TopicSpec {
  readonly name: string;
  readonly partitions: number;
}

interface ProviderEvent {
  readonly RequestType: 'Create' | 'Update' | 'Delete';
  readonly PhysicalResourceId?: string;
  readonly ResourceProperties: {
    readonly ClusterArn: string;
    readonly BootstrapServers: string;
    readonly Topics: string;
    readonly RetentionMs: string;
    readonly DeleteTopicsOnDelete: string;
  };
}

/**
 * kafkajs's OAUTHBEARER provider for MSK IAM auth. The token is AWS's own signer's (aws-msk-iam-sasl-signer-js, as the
 * signaller function uses it): a presigned `kafka-cluster:Connect` URL, signed with the default credential chain (the
 * execution role inside Lambda, the shell's credentials for `npm run backfill`). kafkajs calls it on every
 * authentication of a broker connection, re-authentications included, and each call signs a new token, so a long
 * session never presents an expired one.
 */
export function mskIamTokenProvider(region: string): () => Promise<OauthbearerProviderResponse> {
  return async () => ({ value: (await generateAuthToken({ region })).token });
}

export interface TopicPlan {
  readonly create: readonly TopicSpec[];
  readonly grow: readonly TopicSpec[];
  readonly problems: readonly string[];
}

/** What to do given the wanted topics and the partition counts that exist. Pure, for the tests. */
export function planTopics(wanted: readonly TopicSpec[], existing: ReadonlyMap<string, number>): TopicPlan {
  const create: TopicSpec[] = [];
  const grow: TopicSpec[] = [];
  const problems: string[] = [];
  for (const topic of wanted) {
    const current = existing.get(topic.name);
    if (current === undefined) create.push(topic);
    else if (current < topic.partitions) grow.push(topic);
    else if (current > topic.partitions) {
      problems.push(`topic ${topic.name} has ${current} partitions; Kafka cannot shrink it to ${topic.partitions}`);
    }
  }
  return { create, grow, problems };
}

export async function onEvent(event: ProviderEvent): Promise<{ PhysicalResourceId: string }> {
  const props = event.ResourceProperties;
  const region = process.env.AWS_REGION ?? 'us-east-1';
  const physicalId = event.PhysicalResourceId ?? `topics:${props.ClusterArn}`;
  const topics = JSON.parse(props.Topics) as TopicSpec[];
  const kafka = new Kafka({
    clientId: 'cdc-sync-topic-admin',
    brokers: props.BootstrapServers.split(','),
    ssl: true,
    sasl: { mechanism: 'oauthbearer', oauthBearerProvider: mskIamTokenProvider(region) },
    logLevel: logLevel.WARN,
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    if (event.RequestType === 'Delete') {
      if (props.DeleteTopicsOnDelete === 'true') {
        const existing = new Set(await admin.listTopics());
        const names = topics.map((t) => t.name).filter((name) => existing.has(name));
        if (names.length > 0) await admin.deleteTopics({ topics: names });
      }
      return { PhysicalResourceId: physicalId };
    }
    const names = new Set(await admin.listTopics());
    const metadata = await admin.fetchTopicMetadata({ topics: topics.map((t) => t.name).filter((n) => names.has(n)) });
    const existing = new Map(metadata.topics.map((t) => [t.name, t.partitions.length]));
    const plan = planTopics(topics, existing);
    if (plan.problems.length > 0) throw new Error(plan.problems.join('; '));
    if (plan.create.length > 0) {
      await admin.createTopics({
        waitForLeaders: true,
        topics: plan.create.map((t) => ({
          topic: t.name,
          numPartitions: t.partitions,
          configEntries: [{ name: 'retention.ms', value: props.RetentionMs }],
        })),
      });
    }
    if (plan.grow.length > 0) {
      await admin.createPartitions({ topicPartitions: plan.grow.map((t) => ({ topic: t.name, count: t.partitions })) });
    }
    console.log(JSON.stringify({ created: plan.create.map((t) => t.name), grown: plan.grow.map((t) => t.name) }));
    return { PhysicalResourceId: physicalId };
  } finally {
    await admin.disconnect();
  }
}
