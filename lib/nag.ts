import type {
  IPolicyValidationContext,
  IPolicyValidationPlugin,
  PolicyValidationPluginReport,
  PolicyViolation,
} from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';

/**
 * cdk-nag acknowledgements, declared next to the code that causes the finding, each with its reason.
 *
 * cdk-nag 3 reports one finding per wildcard (`AwsSolutions-IAM5[Resource::<rendered ARN>]`) and
 * `Validations.acknowledge` only matches exact finding ids. The rendered ARN embeds logical ids, export names and
 * CloudFormation intrinsics, which only exist once cross-stack references are resolved during synth and which no one
 * should copy into code. So an acknowledgement names the rule and, optionally, a pattern for the finding detail and
 * the construct path; `CdcSyncNagChecks` runs the AwsSolutions pack during synth validation and drops exactly the
 * findings an acknowledgement on the violating construct (or one of its parents) matches. Everything else stays a
 * violation (errors and warnings alike) and fails the synth.
 */
export interface NagAcknowledgement {
  /** Rule id without the finding, e.g. `AwsSolutions-IAM5`. */
  readonly rule: string;
  /** Only findings whose detail (the text in brackets) matches. @default every finding of the rule */
  readonly finding?: RegExp;
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

/** The acknowledgement that covers a finding on a construct, if any (deepest scope and latest declaration first). */
export function findAcknowledgement(
  construct: IConstruct,
  ruleName: string,
  path = construct.node.path,
): NagAcknowledgement | undefined {
  const { rule, finding } = split(ruleName);
  return construct.node.scopes
    .flatMap((scope) => registry.get(scope) ?? [])
    .reverse()
    .find(
      (ack) =>
        ack.rule === rule &&
        (ack.finding === undefined || (finding !== undefined && ack.finding.test(finding))) &&
        (ack.path === undefined || ack.path.test(path)),
    );
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
        const ack = construct === undefined ? undefined : findAcknowledgement(construct, violation.ruleName);
        if (ack !== undefined && construct !== undefined) {
          this.acknowledged.push({
            ruleName: violation.ruleName,
            constructPath: construct.node.path,
            reason: ack.reason,
          });
        }
        return ack === undefined;
      });
      if (remaining.length > 0) violations.push({ ...violation, violatingResources: remaining });
    }
    return { ...report, success: violations.length === 0, violations };
  }
}

/** Findings every custom resource Provider framework brings (its functions and waiter state machine). */
export function acknowledgeProviderFramework(provider: IConstruct): void {
  acknowledgeNag(
    provider,
    {
      rule: 'AwsSolutions-IAM4',
      finding: /AWSLambdaBasicExecutionRole$/,
      reason: 'CDK Provider framework functions: the AWS managed basic execution policy only grants CloudWatch Logs.',
    },
    {
      rule: 'AwsSolutions-IAM5',
      finding: /^Resource::<[A-Za-z0-9]+\.Arn>:\*$/,
      reason: 'CDK Provider framework: invoke any version of the handler functions it orchestrates (and only those).',
    },
    {
      rule: 'AwsSolutions-IAM5',
      finding: /^Resource::\*$/,
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
