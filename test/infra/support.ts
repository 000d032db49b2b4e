import type { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { createApp } from '../../lib/app';
import type { CdcSyncStage } from '../../lib/cdc-sync-stage';
import { type EnvironmentConfig, environmentConfig } from '../../lib/config';
import { CdcSyncNagChecks } from '../../lib/nag';
import { throwawayDir } from '../support/scratch';

/** The five stacks of a stage, by short name. */
export const STACKS = ['network', 'data', 'streaming', 'lanes', 'observability'] as const;
export type StackName = (typeof STACKS)[number];

export interface SynthesizedEnvironment {
  readonly stage: CdcSyncStage;
  readonly config: EnvironmentConfig;
  readonly stack: (name: StackName) => Stack;
  readonly template: (name: StackName) => Template;
}

/**
 * Builds one environment the way bin/ does (same feature flags), but without bundling (context
 * `aws:cdk:bundling-stacks: []`: NodejsFunction then does not run esbuild) and without the nag plugin (the nag tests
 * run the pack per stack to report findings stack by stack). Templates are synthesized once and memoised.
 */
export function synthesize(configOrName: EnvironmentConfig | string): SynthesizedEnvironment {
  const config = typeof configOrName === 'string' ? environmentConfig(configOrName) : configOrName;
  const { stage } = createApp({
    config,
    nag: false,
    context: { 'aws:cdk:bundling-stacks': [] },
    outdir: throwawayDir('infra-'),
  });
  const templates = new Map<StackName, Template>();
  const stack = (name: StackName): Stack => stage[name];
  return {
    stage,
    config,
    stack,
    template: (name) => {
      let template = templates.get(name);
      if (template === undefined) {
        template = Template.fromStack(stack(name));
        templates.set(name, template);
      }
      return template;
    },
  };
}

/** AwsSolutions findings left after the declared acknowledgements, as `rule @ path` lines (empty = clean). */
export function nagFindings(stack: Stack): string[] {
  const report = new CdcSyncNagChecks().validateScope(stack);
  return report.violations.flatMap((v) =>
    v.violatingResources.map((r) => `${v.ruleName} @ ${r.constructPath ?? r.resourceLogicalId ?? '?'}`),
  );
}

/**
 * The template JSON with what changes on every unrelated edit replaced: 64-hex asset hashes (code bundles, the
 * plugin asset) and the 10-hex content hashes in plugin/worker-configuration names.
 */
export function normalisedTemplate(template: Template): unknown {
  const json = JSON.stringify(template.toJSON())
    .replace(/[0-9a-f]{64}/g, '<asset-hash>')
    .replace(/(-debezium-|-workers-)[0-9a-f]{10}/g, '$1<content-hash>');
  return JSON.parse(json);
}

/** A deep copy of a configuration with changes, for the tests that need a variant. */
export function variant(
  base: EnvironmentConfig,
  change: (draft: Mutable<EnvironmentConfig>) => void,
): EnvironmentConfig {
  const draft = structuredClone(base) as Mutable<EnvironmentConfig>;
  change(draft);
  return draft;
}

export type Mutable<T> = T extends readonly (infer U)[]
  ? Mutable<U>[]
  : T extends object
    ? { -readonly [K in keyof T]: Mutable<T[K]> }
    : T;

/** Resources of a type, as [logicalId, resource] pairs. */
export function resourcesOf(
  template: Template,
  type: string,
): Array<[string, { Properties?: Record<string, unknown> }]> {
  return Object.entries(template.findResources(type)) as Array<[string, { Properties?: Record<string, unknown> }]>;
}

/** CloudFormation intrinsics rendered as readable strings: `Fn::Join` joined, other intrinsics as `<Ref|Att>`. */
export function render(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value !== null && typeof value === 'object') {
    const join = (value as Record<string, unknown>)['Fn::Join'];
    if (Array.isArray(join)) return (join[1] as unknown[]).map(render).join(join[0] as string);
    const key = Object.keys(value)[0] ?? '?';
    return `<${key}>`;
  }
  return String(value);
}

export interface RenderedStatement {
  readonly sid?: string;
  readonly effect: string;
  readonly actions: string[];
  readonly resources: string[];
}

/** Every statement of the IAM policies attached to roles whose logical id matches, with resources rendered. */
export function statementsOfRole(template: Template, roleLogicalId: RegExp): RenderedStatement[] {
  const asArray = (v: unknown): unknown[] => (Array.isArray(v) ? v : v === undefined ? [] : [v]);
  return resourcesOf(template, 'AWS::IAM::Policy')
    .filter(([, p]) =>
      asArray(p.Properties?.Roles).some((r) => roleLogicalId.test(String((r as { Ref?: unknown }).Ref))),
    )
    .flatMap(([, p]) => asArray((p.Properties?.PolicyDocument as { Statement?: unknown })?.Statement))
    .map((s) => {
      const statement = s as Record<string, unknown>;
      return {
        sid: statement.Sid as string | undefined,
        effect: String(statement.Effect),
        actions: asArray(statement.Action).map(String),
        resources: asArray(statement.Resource).map(render),
      };
    });
}
