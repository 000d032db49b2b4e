import { Fn, Stack } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/**
 * ARNs of the IAM-authorised Kafka resources of one cluster. MSK IAM policies name topics and groups as
 * `arn:<partition>:kafka:<region>:<account>:topic/<clusterName>/<clusterUuid>/<topic>` (same for `group/`), and the
 * UUID is only known from the cluster ARN (`…:cluster/<clusterName>/<clusterUuid>`), so it is split out at deploy
 * time. Works for provisioned and serverless clusters alike.
 */
export class MskArns {
  private readonly prefix: (kind: 'topic' | 'group') => string;

  constructor(
    scope: IConstruct,
    readonly clusterArn: string,
    readonly clusterName: string,
  ) {
    const stack = Stack.of(scope);
    const uuid = Fn.select(2, Fn.split('/', clusterArn));
    this.prefix = (kind) =>
      `arn:${stack.partition}:kafka:${stack.region}:${stack.account}:${kind}/${clusterName}/${uuid}/`;
  }

  /** A topic, or a pattern of topics (IAM wildcards `*` and `?` are allowed in the name). */
  topic(name: string): string {
    return `${this.prefix('topic')}${name}`;
  }

  /** A consumer group, or a pattern of groups. */
  group(name: string): string {
    return `${this.prefix('group')}${name}`;
  }
}
