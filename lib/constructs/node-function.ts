import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, type RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { acknowledgeNag, BASIC_EXECUTION_POLICY } from '../nag';

/** Repository root (lib/constructs/ → ../..), for handler entry paths that do not depend on the working directory. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * How every function of the project is built: esbuild with the local binary (no Docker), minified ESM with linked
 * source maps, for Node.js 22. The AWS SDK is bundled too (not taken from the runtime) so a function runs the
 * versions package-lock.json pins, the same ones the tests ran against.
 */
export const BUNDLING: nodejs.BundlingOptions = {
  format: nodejs.OutputFormat.ESM,
  target: 'node22',
  minify: true,
  sourceMap: true,
  sourceMapMode: nodejs.SourceMapMode.DEFAULT,
  mainFields: ['module', 'main'],
  externalModules: [],
  // CommonJS dependencies (ioredis, kafkajs, …) call require(); an ESM bundle has none unless it is created.
  banner:
    "import { createRequire as __cdcSyncCreateRequire } from 'node:module'; const require = __cdcSyncCreateRequire(import.meta.url);",
  forceDockerBundling: false,
};

export interface ProjectFunctionProps
  extends Omit<nodejs.NodejsFunctionProps, 'runtime' | 'architecture' | 'bundling' | 'logGroup' | 'entry'> {
  /** Handler file, relative to the repository root. */
  readonly entry: string;
  /** Days the function's log group keeps logs. */
  readonly logRetention: logs.RetentionDays;
  /** Removal policy of the log group. */
  readonly logRemovalPolicy: RemovalPolicy;
}

/**
 * A NodejsFunction with the project's defaults: nodejs22.x on arm64, the bundling above, X-Ray tracing and its own
 * log group with a retention. Lanes and custom resource handlers are all built this way.
 */
export class ProjectFunction extends nodejs.NodejsFunction {
  constructor(scope: Construct, id: string, props: ProjectFunctionProps) {
    const { entry, logRetention, logRemovalPolicy, ...rest } = props;
    // The log group is created before super() can run, so it lives in a sibling scope named after the function.
    const logGroup = new logs.LogGroup(scope, `${id}LogGroup`, {
      retention: logRetention,
      removalPolicy: logRemovalPolicy,
    });
    super(scope, id, {
      timeout: Duration.seconds(30),
      memorySize: 256,
      tracing: lambda.Tracing.ACTIVE,
      ...rest,
      // Stack traces point at the TypeScript sources (the bundles ship linked source maps).
      environment: { NODE_OPTIONS: '--enable-source-maps', ...rest.environment },
      entry: path.join(REPO_ROOT, entry),
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      bundling: BUNDLING,
      logGroup,
    });
    acknowledgeNag(
      this,
      {
        rule: 'AwsSolutions-IAM4',
        managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName(BASIC_EXECUTION_POLICY).managedPolicyArn],
        reason: 'AWS managed basic execution policy: CloudWatch Logs writes only (the log group is created by CDK).',
      },
      {
        rule: 'AwsSolutions-IAM4',
        managedPolicies: [
          iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSLambdaVPCAccessExecutionRole').managedPolicyArn,
        ],
        reason: 'Required by a VPC function to manage its ENIs; those EC2 actions support no resource scoping.',
      },
      {
        rule: 'AwsSolutions-IAM5',
        resources: ['*'],
        actions: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'],
        reason:
          'Tracing is active: xray:PutTraceSegments and xray:PutTelemetryRecords have no resource-level permissions.',
      },
      {
        rule: 'AwsSolutions-L1',
        reason:
          'The platform targets nodejs22.x on purpose (the lanes and their tests are built for it); cdk-nag flags anything older than the newest runtime. Moving to a newer runtime is a deliberate upgrade.',
      },
    );
  }
}

/**
 * The role EventBridge Scheduler assumes to invoke `fn` (only from schedules of this account). Its Lambda target
 * grants invoke with `grantInvoke`, on the function and `<arn>:*` (its versions and aliases): acknowledged here.
 */
export function scheduleInvokeRole(scope: Construct, id: string, fn: lambda.IFunction): iam.Role {
  const role = new iam.Role(scope, id, {
    assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
      conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(scope).account } },
    }),
    description: `EventBridge Scheduler: invokes ${fn.node.path}`,
  });
  acknowledgeNag(role, {
    rule: 'AwsSolutions-IAM5',
    resources: [`${fn.functionArn}:*`],
    actions: ['lambda:InvokeFunction'],
    reason:
      "EventBridge Scheduler's Lambda target grants invoke on the function's versions and aliases (<arn>:*) besides the function; this role invokes only that one function.",
  });
  return role;
}
