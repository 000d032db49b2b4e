import { beforeAll, describe, expect, it } from 'vitest';
import { normalisedTemplate, STACKS, type SynthesizedEnvironment, synthesize } from './support';

// One snapshot per stack of the dev environment. Asset hashes (code bundles) and the content hashes in plugin and
// worker-configuration names are normalised, so a snapshot changes only when the infrastructure does.
describe('snapshots (dev)', () => {
  let dev: SynthesizedEnvironment;
  beforeAll(() => {
    dev = synthesize('dev');
  });

  it.each(STACKS)('%s stack matches its snapshot', (stack) => {
    expect(normalisedTemplate(dev.template(stack))).toMatchSnapshot();
  });
});
