/**
 * npm run bench -- [--json] [--e2e | --snapshot [--chunk-size <rows>] | --files] [--quick]
 *
 * Pipeline benchmarks, each measured side by side with its baseline in the same run (never timed assertions in
 * tests), Avro decoding included (avro.ts). `--e2e` runs the local pipeline end to end (e2e.ts), `--snapshot` an
 * incremental snapshot of a 100k-row table under the demo workload against a run without it
 * (incremental-snapshot.ts), `--files` the change log's files and bytes per 10,000 changes before and after compaction
 * (files.ts). Prints one JSON object with --json.
 */
import { parseFlagsOrExit } from '../lib/args';
import { reserveStdout } from '../lib/cli';
import { avroBenchmarks } from './avro';
import { coreDeps, decodeAll, measure, powertoolsHandler, rawFloor, runPipeline, stubbedLane } from './cpu';
import { measureDdbCalls } from './ddb-calls';
import { benchEvent } from './fixtures';
import { measureInit } from './init';

const USAGE = 'usage: npm run bench -- [--json] [--e2e | --snapshot [--chunk-size <rows>] | --files] [--quick]';
const FLAGS = {
  json: { type: 'boolean' },
  e2e: { type: 'boolean' },
  snapshot: { type: 'boolean' },
  files: { type: 'boolean' },
  'chunk-size': { type: 'string' },
  quick: { type: 'boolean' },
} as const;

const round = (n: number, digits = 3) => Number(n.toFixed(digits));

async function pipelineBenchmarks(quick: boolean) {
  const count = 10_000;
  const event = benchEvent(count);
  const iterations = quick ? 5 : 15;
  const warehouse = stubbedLane('warehouse');
  const audit = stubbedLane('audit');
  const context = { functionName: 'bench', awsRequestId: 'bench' } as never;
  const t = await measure(
    {
      rawFloor: () => rawFloor(event),
      decode: () => decodeAll(event),
      core: () => runPipeline(event, coreDeps()),
      powertools: () => powertoolsHandler(event as never, context),
      warehousePipeline: () => runPipeline(event, warehouse.deps),
      auditPipeline: () => runPipeline(event, audit.deps),
    },
    iterations,
  );
  type Subject = 'rawFloor' | 'decode' | 'core' | 'powertools' | 'warehousePipeline' | 'auditPipeline';
  const times = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, v.min])) as Record<Subject, number>;
  const medians = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, round(v.median, 1)]));
  const perRecordUs = Object.fromEntries(Object.entries(times).map(([k, ms]) => [k, round((ms * 1000) / count, 2)]));
  const ddb = await measureDdbCalls(count);
  const init = await measureInit('warehouse', quick ? 7 : 15);
  const { avroDecodeVsJsonFloor, avroVsPowertools, goals: avroGoals, ...avro } = await avroBenchmarks(quick);
  const valueBytes = Buffer.from(event.records['pg.public.orders-0']?.[0]?.value ?? '', 'base64').length;
  return {
    records: count,
    recordBytes: valueBytes,
    decodeVsRawFloor: round(times.rawFloor / times.decode),
    handlerVsPowertools: round(times.powertools / times.core),
    avroDecodeVsJsonFloor,
    avroVsPowertools,
    ddbCallsPerRecord: {
      duplicates0: round(ddb.fresh.callsPerRecord, 5),
      duplicates50: round(ddb.redelivered.callsPerRecord, 5),
      duplicates50Reemitted: round(ddb.reemitted.callsPerRecord, 5),
    },
    pipelineVsRawFloor: round(Math.max(times.warehousePipeline, times.auditPipeline) / times.rawFloor),
    pipelineVsRawFloorByLane: {
      warehouse: round(times.warehousePipeline / times.rawFloor),
      audit: round(times.auditPipeline / times.rawFloor),
    },
    initVsUnbundled: round(init.bundledMs / init.unbundledMs),
    goals: {
      decodeVsRawFloor: '>= 0.9',
      handlerVsPowertools: '>= 3',
      ...avroGoals,
      ddbCallsPerRecord: '<= 0.02',
      pipelineVsRawFloor: '<= 2.5',
      initVsUnbundled: '<= 0.4',
    },
    details: {
      perRecordMicros: perRecordUs,
      batchCpuMs: Object.fromEntries(Object.entries(times).map(([k, v]) => [k, round(v, 1)])),
      batchCpuMsMedian: medians,
      init: { ...init, bundledMs: round(init.bundledMs, 1), unbundledMs: round(init.unbundledMs, 1) },
      // Avro (Confluent-framed, same rows): record sizes, per-record µs of the JSON raw floor and the Avro decoders.
      avro,
      duplicatesMeasured: { redelivered: ddb.redelivered.duplicates, reemitted: ddb.reemitted.duplicates },
      httpRequestsStubbed: Object.fromEntries(warehouse.http.counts),
      node: process.version,
    },
  };
}

async function main() {
  const out = reserveStdout();
  const { values: flags } = parseFlagsOrExit(process.argv.slice(2), FLAGS, USAGE);
  const quick = flags.quick === true;
  let result: unknown;
  if (flags.e2e) {
    const { e2eBenchmarks } = await import('./e2e');
    result = await e2eBenchmarks({ quick });
  } else if (flags.files) {
    const { fileBenchmarks } = await import('./files');
    result = await fileBenchmarks({ quick });
  } else if (flags.snapshot) {
    const { snapshotBenchmarks } = await import('./incremental-snapshot');
    const chunk = flags['chunk-size'];
    const chunkSize = chunk !== undefined ? Number(chunk) : undefined;
    if (chunkSize !== undefined && !(Number.isInteger(chunkSize) && chunkSize > 0)) {
      throw new Error(`--chunk-size must be a positive whole number, got "${chunk}"`);
    }
    result = await snapshotBenchmarks({ quick, ...(chunkSize ? { chunkSize } : {}) });
  } else {
    result = await pipelineBenchmarks(quick);
  }
  out(flags.json ? `${JSON.stringify(result)}\n` : `${JSON.stringify(result, null, 2)}\n`);
  process.exit(0);
}

await main();
