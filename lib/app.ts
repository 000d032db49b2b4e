import { App, type AppProps, Validations } from 'aws-cdk-lib';
import { CdcSyncStage } from './cdc-sync-stage';
import { DEFAULT_ENVIRONMENT, type EnvironmentConfig, environmentConfig } from './config';
import { FEATURE_FLAGS } from './feature-flags';
import { CdcSyncNagChecks } from './nag';

export interface CdcSyncAppOptions {
  /**
   * Extra context, e.g. `env` (what `-c env=<name>` sets) or `aws:cdk:bundling-stacks: []` (tests, to skip esbuild).
   * @default - the feature flags only
   */
  readonly context?: Record<string, unknown>;
  /**
   * Run the cdk-nag AwsSolutions pack as a policy validation plugin: synth fails on any unacknowledged finding
   * (warnings included). Tests run the pack per stack instead, to report findings stack by stack.
   * @default true
   */
  readonly nag?: boolean;
  /**
   * Use this configuration instead of the one named by `-c env=<name>` (tests).
   * @default - `environmentConfig(<-c env>)`, dev when no env is given
   */
  readonly config?: EnvironmentConfig;
  /**
   * Cloud assembly directory.
   * @default - what the CDK CLI passes, or a temporary directory
   */
  readonly outdir?: string;
}

/**
 * The CDK app: one stage for the environment named by `-c env=<name>` (default dev). Only that stage is built, so
 * `cdk deploy -c env=<name> --all` deploys exactly one environment.
 */
export function createApp(options: CdcSyncAppOptions = {}): { app: App; stage: CdcSyncStage } {
  const props: AppProps = {
    context: { ...FEATURE_FLAGS, ...options.context },
    ...(options.outdir === undefined ? {} : { outdir: options.outdir }),
  };
  const app = new App(props);
  const requested = app.node.tryGetContext('env') as string | undefined;
  const config = options.config ?? environmentConfig(requested ?? DEFAULT_ENVIRONMENT);
  // ec2.Vpc checks the configured zones against the stack's, which with an explicit account/region is a context
  // lookup (needs credentials). The zones are in the configuration, so answer the lookup from it: synth stays offline.
  app.node.setContext(
    `availability-zones:account=${config.account}:region=${config.region}`,
    config.network.vpc.availabilityZones,
  );
  const stage = new CdcSyncStage(app, config.name, { config });
  if (options.nag !== false) {
    Validations.of(app).addPlugins(new CdcSyncNagChecks());
  }
  return { app, stage };
}
