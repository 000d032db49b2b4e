import {
  type IPolicyValidationContext,
  type IPolicyValidationPlugin,
  type PolicyValidationPluginReport,
  type PolicyViolation,
  Stack,
} from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as cr from 'aws-cdk-lib/custom-resources';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';

/**
 * cdk-nag acknowledgements, declared next to the code that causes the finding, each with its reason.
 *
 * cdk-nag 3 reports one finding per wildcard (`AwsSolutions-IAM5[Resource::<rendered ARN>]`) and per AWS managed
 * policy (`AwsSolutions-IAM4[Policy::<rendered ARN>]`), and `Validations.acknowledge` only matches exact finding ids.
 * The rendered ARN embeds logical ids, export names and CloudFormation intrinsics, which only exist once the app is
 * synthesized and which no one should copy into code. So an acknowledgement names the resource exactly as the code
 * grants it (the same string or token the policy statement uses) and the actions it may be granted with;
 * `CdcSyncNagChecks` renders that resource the way cdk-nag does, in the stack of the violating policy, and drops a
 * finding only when the rendered text is equal and every action the policy grants on that resource is acknowledged
 * (by one or more acknowledgements). A new wildcard, or a new action on an acknowledged one, stays a violation. So
 * does every other unacknowledged finding (errors and warnings alike), which fails the synth.
 */
export interface NagAcknowledgement {
  /** Rule id without the finding, e.g. `AwsSolutions-IAM5`. */
  readonly rule: string;
  /**
   * IAM5: the wildcard resources exactly as granted (strings or tokens), e.g. `bucket.arnForObjects('audit/*')`.
   * Findings with a detail are only acknowledged through `resources` or `managedPolicies`, never by the rule alone.
   */
  readonly resources?: readonly string[];
  /** IAM5: every action the policy may grant on those resources. */
  readonly actions?: readonly string[];
  /** IAM4: the AWS managed policy ARNs exactly as attached (e.g. `ManagedPolicy.fromAwsManagedPolicyName(…)`). */
  readonly managedPolicies?: readonly string[];
  /** Only resources whose construct path matches (for acknowledgements placed on a stack). @default any below */
  readonly path?: RegExp;
  /** Why this is acceptable. */
  readonly reason: string;
}

const registry = new WeakMap<IConstruct, NagAcknowledgement[]>();

/** Declares acknowledgements for findings on `scope` and every construct below it. */
export function acknowledgeNag(scope: IConstruct, ...acknowledgements: NagAcknowledgement[]): void {
  registry.set(scope, [...(registry.get(scope) ?? []), ...acknowledgements]);
}

function split(ruleName: string): { rule: string; finding: string | undefined } {
  const open = ruleName.indexOf('[');
  if (open < 0 || !ruleName.endsWith(']')) return { rule: ruleName, finding: undefined };
  return { rule: ruleName.slice(0, open), finding: ruleName.slice(open + 1, -1) };
}

/**
 * A resolved CloudFormation value as cdk-nag prints it in a finding: `Fn::Join` joined, `Fn::Sub` templates with
 * `<…>`, `Fn::GetAtt` as `<Logical.Attr>`, `Ref` as `<Logical>`, `Fn::ImportValue` as its export name, anything else
 * as JSON.
 */
export function renderLikeCdkNag(value: unknown): string {
  if (value === undefined) return '';
  if (typeof value === 'string') return value.replace(/\$\{/g, '<').replace(/}/g, '>');
  const node = value as Record<string, unknown>;
  if (node['Fn::Join'] !== undefined) {
    const [delimiter, items] = node['Fn::Join'] as [string, unknown[]];
    return items.map(renderLikeCdkNag).join(delimiter);
  }
  if (node['Fn::Sub'] !== undefined) return renderLikeCdkNag(node['Fn::Sub']);
  if (node['Fn::GetAtt'] !== undefined) {
    const [resource, attribute] = node['Fn::GetAtt'] as [unknown, unknown];
    return `<${renderLikeCdkNag(resource)}.${renderLikeCdkNag(attribute)}>`;
  }
  if (node['Fn::ImportValue'] !== undefined) return renderLikeCdkNag(node['Fn::ImportValue']);
  if (node.Ref !== undefined) return `<${renderLikeCdkNag(node.Ref)}>`;
  return JSON.stringify(value);
}

interface Statement {
  readonly Effect?: string;
  readonly Action?: string | string[];
  readonly Resource?: unknown;
}

const asArray = <T>(value: T | T[] | undefined): T[] =>
  Array.isArray(value) ? value : value === undefined ? [] : [value];

/** The Allow statements of a policy or role construct, resolved in its stack. */
function allowStatements(construct: IConstruct): Statement[] {
  const stack = Stack.of(construct);
  const documents: unknown[] = [];
  if (construct instanceof iam.CfnPolicy || construct instanceof iam.CfnManagedPolicy) {
    documents.push(construct.policyDocument);
  } else if (construct instanceof iam.CfnRole) {
    for (const policy of asArray(stack.resolve(construct.policies) as unknown[])) {
      documents.push((stack.resolve(policy) as { policyDocument?: unknown }).policyDocument);
    }
  }
  return documents.flatMap((document) =>
    asArray((stack.resolve(document) as { Statement?: Statement[] } | undefined)?.Statement).filter(
      (statement) => statement.Effect === 'Allow',
    ),
  );
}

/**
 * The acknowledgements that cover a finding on a construct (deepest scope and latest declaration first); empty when
 * none does. A finding with a wildcard resource needs the union of the matching acknowledgements' actions to cover
 * every action granted on that resource.
 */
export function findAcknowledgements(
  construct: IConstruct,
  ruleName: string,
  path = construct.node.path,
): NagAcknowledgement[] {
  const { rule, finding } = split(ruleName);
  const stack = Stack.of(construct);
  const render = (value: string) => renderLikeCdkNag(stack.resolve(value));
  const candidates = construct.node.scopes
    .flatMap((scope) => registry.get(scope) ?? [])
    .reverse()
    .filter((ack) => ack.rule === rule && (ack.path === undefined || ack.path.test(path)));
  if (finding === undefined) {
    return candidates.filter((ack) => ack.resources === undefined && ack.managedPolicies === undefined).slice(0, 1);
  }
  if (finding.startsWith('Policy::')) {
    const policy = finding.slice('Policy::'.length);
    return candidates.filter((ack) => (ack.managedPolicies ?? []).some((arn) => render(arn) === policy)).slice(0, 1);
  }
  if (!finding.startsWith('Resource::')) return [];
  const resource = finding.slice('Resource::'.length);
  const matching = candidates.filter((ack) => (ack.resources ?? []).some((r) => render(r) === resource));
  const acknowledged = new Set(matching.flatMap((ack) => ack.actions ?? []));
  const granted = allowStatements(construct)
    .filter((statement) => asArray(statement.Resource).some((r) => renderLikeCdkNag(r) === resource))
    .flatMap((statement) => asArray(statement.Action));
  if (matching.length === 0 || granted.length === 0) return [];
  return granted.every((action) => acknowledged.has(action)) ? matching : [];
}

/** A finding that an acknowledgement covered, kept for review (tests print them, docs list them). */
export interface AcknowledgedFinding {
  readonly ruleName: string;
  readonly constructPath: string;
  readonly reason: string;
}

/**
 * The AwsSolutions pack with the declared acknowledgements applied. Register it with
 * `Validations.of(app).addPlugins(new CdcSyncNagChecks())`; tests call `validateScope(stack)`.
 */
export class CdcSyncNagChecks implements IPolicyValidationPlugin {
  readonly name = 'cdk-nag-AwsSolutions';
  readonly acknowledged: AcknowledgedFinding[] = [];
  private readonly pack = new AwsSolutionsChecks(undefined, { verbose: true });

  validate(context: IPolicyValidationContext): PolicyValidationPluginReport {
    return this.filter(this.pack.validate(context), context.appConstruct);
  }

  validateScope(scope: IConstruct): PolicyValidationPluginReport {
    return this.filter(this.pack.validateScope(scope), scope);
  }

  private filter(report: PolicyValidationPluginReport, root: IConstruct): PolicyValidationPluginReport {
    const byPath = new Map(root.node.findAll().map((c) => [c.node.path, c] as const));
    const violations: PolicyViolation[] = [];
    for (const violation of report.violations) {
      const remaining = violation.violatingResources.filter((resource) => {
        const construct = resource.constructPath === undefined ? undefined : byPath.get(resource.constructPath);
        const acks = construct === undefined ? [] : findAcknowledgements(construct, violation.ruleName);
        if (acks.length > 0 && construct !== undefined) {
          this.acknowledged.push({
            ruleName: violation.ruleName,
            constructPath: construct.node.path,
            reason: acks.map((ack) => ack.reason).join(' '),
          });
        }
        return acks.length === 0;
      });
      if (remaining.length > 0) violations.push({ ...violation, violatingResources: remaining });
    }
    return { ...report, success: violations.length === 0, violations };
  }
}

/** The AWS managed policy every Lambda function's role gets (CloudWatch Logs writes only). */
export const BASIC_EXECUTION_POLICY = 'service-role/AWSLambdaBasicExecutionRole';

/**
 * What CDK grants a state machine for its logging: the log-delivery actions (no resource-level permissions) and, on the
 * same `*`, log stream writes.
 */
const LOG_DELIVERY_ACTIONS = [
  'logs:CreateLogDelivery',
  'logs:CreateLogStream',
  'logs:PutLogEvents',
  'logs:DeleteLogDelivery',
  'logs:DescribeLogGroups',
  'logs:DescribeResourcePolicies',
  'logs:GetLogDelivery',
  'logs:ListLogDeliveries',
  'logs:PutResourcePolicy',
  'logs:UpdateLogDelivery',
];

/** Findings every custom resource Provider framework brings (its functions and waiter state machine). */
export function acknowledgeProviderFramework(provider: cr.Provider): void {
  const functions = [provider.onEventHandler, provider.isCompleteHandler].filter((fn) => fn !== undefined);
  const framework = provider.node.children.filter((child) => child instanceof lambda.Function);
  acknowledgeNag(
    provider,
    {
      rule: 'AwsSolutions-IAM4',
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName(BASIC_EXECUTION_POLICY).managedPolicyArn],
      reason: 'CDK Provider framework functions: the AWS managed basic execution policy only grants CloudWatch Logs.',
    },
    {
      rule: 'AwsSolutions-IAM5',
      // The framework functions invoke the handlers, the waiter invokes the framework's isComplete and onTimeout.
      resources: [...functions, ...framework].map((fn) => `${fn.functionArn}:*`),
      actions: ['lambda:InvokeFunction'],
      reason: 'CDK Provider framework: invoke any version of the handler functions it orchestrates (and only those).',
    },
    {
      rule: 'AwsSolutions-IAM5',
      resources: ['*'],
      actions: LOG_DELIVERY_ACTIONS,
      path: /\/waiter-state-machine\//,
      reason:
        'Waiter state machine logging: the CloudWatch Logs log-delivery actions Step Functions needs have no resource-level permissions.',
    },
    {
      rule: 'AwsSolutions-SF2',
      reason: 'CDK Provider framework waiter state machine: not configurable for X-Ray; the handlers themselves trace.',
    },
    {
      rule: 'AwsSolutions-L1',
      reason: 'CDK Provider framework functions: the runtime is chosen by aws-cdk-lib and upgraded with it.',
    },
  );
}
