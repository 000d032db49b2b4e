#!/usr/bin/env node
import { createApp } from '../lib/app';

// `npx cdk synth|diff|deploy -c env=<dev|staging|prod> --all`. An unknown name fails with the list of valid ones;
// a known-bad configuration fails with every problem listed; an unacknowledged cdk-nag finding fails the synth.
const { app } = createApp();
app.synth();
