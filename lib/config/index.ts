import { dev } from './dev';
import { prod } from './prod';
import { staging } from './staging';
import type { EnvironmentConfig } from './types';

export * from './topics';
export * from './types';
export * from './validate';
export * from './warehouse';

/** Every deployable environment, by the name `-c env=<name>` selects. */
export const ENVIRONMENTS: Readonly<Record<string, EnvironmentConfig>> = { dev, staging, prod };

/** The environment deployed when no `-c env=<name>` is given. */
export const DEFAULT_ENVIRONMENT = 'dev';

export class UnknownEnvironmentError extends Error {
  override readonly name = 'UnknownEnvironmentError';
  constructor(readonly requested: string) {
    super(
      `Unknown environment '${requested}'. Valid environments: ${Object.keys(ENVIRONMENTS).join(', ')} (select one with -c env=<name>)`,
    );
  }
}

/** The configuration of one environment; an unknown name fails with the list of valid ones. */
export function environmentConfig(name: string = DEFAULT_ENVIRONMENT): EnvironmentConfig {
  const config = Object.hasOwn(ENVIRONMENTS, name) ? ENVIRONMENTS[name] : undefined;
  if (config === undefined) throw new UnknownEnvironmentError(name);
  return config;
}
