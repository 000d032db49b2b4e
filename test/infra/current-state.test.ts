import { Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { META_COLUMNS } from '../../functions/adapters/change-log-parquet';
import { CurrentStateEnvSchema } from '../../functions/current-state/handler';
import { validateConfig } from '../../lib/config';
import { render, resourcesOf, type SynthesizedEnvironment, statementsOfRole, synthesize, variant } from './support';

type Props = Record<string, unknown>;

function glueTable(env: SynthesizedEnvironment, name: string): Props {
  const found = resourcesOf(env.template('data'), 'AWS::Glue::Table').find(
    ([, r]) => (r.Properties?.TableInput as Props | undefined)?.Name === name,
  );
  if (found === undefined) throw new Error(`no Glue table ${name}`);
  return found[1].Properties?.TableInput as Props;
}

function fn(env: SynthesizedEnvironment, name: string): Props {
  const found = resourcesOf(env.template('lanes'), 'AWS::Lambda::Function').find(
    ([, r]) => r.Properties?.FunctionName === `cdc-sync-${env.config.name}-${name}`,
  );
  if (found === undefined) throw new Error(`no ${name} function`);
  return found[1].Properties ?? {};
}

const columnsOf = (table: Props) =>
  ((table.StorageDescriptor as Props).Columns as Array<{ Name: string; Type: string }>).map((c) => [c.Name, c.Type]);

describe('warehouse catalog, current-state tables and compaction', () => {
  let dev: SynthesizedEnvironment;
  let prod: SynthesizedEnvironment;
  beforeAll(() => {
    dev = synthesize('dev');
    prod = synthesize('prod');
  });

  describe('change-log tables', () => {
    it('defines one Glue table per listed table of the warehouse lane, and no crawler', () => {
      const names = resourcesOf(dev.template('data'), 'AWS::Glue::Table').map(
        ([, r]) => (r.Properties as Props & { TableInput: Props }).TableInput.Name,
      );
      expect(names).toEqual([
        'orders_public_orders_changes',
        'orders_public_order_lines_changes',
        'inventory_inventory_stock_changes',
      ]);
      dev.template('data').resourceCountIs('AWS::Glue::Crawler', 0);
    });

    it("projects the commit-day partitions onto the lane's table=<id>/date=<day>/ folders", () => {
      const table = glueTable(dev, 'orders_public_orders_changes');
      expect(table.PartitionKeys).toEqual([{ Name: 'dt', Type: 'string', Comment: expect.any(String) }]);
      expect(table.Parameters).toMatchObject({
        'projection.enabled': 'true',
        'projection.dt.type': 'date',
        'projection.dt.format': 'yyyy-MM-dd',
        'projection.dt.range': '2026-01-01,NOW',
        'projection.dt.interval': '1',
        'projection.dt.interval.unit': 'DAYS',
      });
      const parameters = table.Parameters as Props;
      expect(render(parameters['storage.location.template'])).toBe(
        `s3://<Ref>/changes/table=orders.public.orders/date=\${dt}/`,
      );
      expect(render((table.StorageDescriptor as Props).Location)).toBe(
        's3://<Ref>/changes/table=orders.public.orders/',
      );
      expect((table.StorageDescriptor as Props).SerdeInfo).toEqual({
        SerializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe',
        Parameters: { 'serialization.format': '1' },
      });
    });

    it("types the columns like the Parquet the lane writes: the _cdc_* columns, then the catalog's", () => {
      const columns = columnsOf(glueTable(dev, 'orders_public_orders_changes'));
      expect(columns.slice(0, META_COLUMNS.length).map(([name]) => name)).toEqual(META_COLUMNS);
      expect(Object.fromEntries(columns.slice(0, META_COLUMNS.length))).toMatchObject({
        _cdc_commit_ts: 'timestamp',
        _cdc_processed_at: 'timestamp',
        _cdc_partition: 'int',
        _cdc_offset: 'bigint',
        _cdc_order: 'string',
      });
      // schemas/public.orders.json: uuid, long, enum, io.debezium.time.Date, ZonedTimestamp, Decimal, string.
      expect(columns.slice(META_COLUMNS.length)).toEqual([
        ['id', 'string'],
        ['customer_id', 'bigint'],
        ['status', 'string'],
        ['order_date', 'date'],
        ['placed_at', 'timestamp'],
        ['total', 'string'],
        ['notes', 'string'],
      ]);
    });

    it('gives a table without a schema catalog entry the metadata columns only, and no current-state table', () => {
      const table = glueTable(dev, 'inventory_inventory_stock_changes');
      expect(columnsOf(table).map(([name]) => name)).toEqual(META_COLUMNS);
      expect(table.Parameters).toMatchObject({ 'cdc_sync.key_columns': '' });
      expect(table.Parameters).not.toHaveProperty('cdc_sync.current_table');
    });

    it('names the key, the topic and the current-state tables for the merge in the table parameters', () => {
      expect(glueTable(dev, 'orders_public_orders_changes').Parameters).toMatchObject({
        'cdc_sync.table_id': 'orders.public.orders',
        'cdc_sync.topic': 'orders.public.orders',
        'cdc_sync.partitions': '3',
        'cdc_sync.key_columns': 'id',
        'cdc_sync.current_table': 'orders_public_orders_current',
        'cdc_sync.deleted_table': 'orders_public_orders_deleted',
      });
    });

    it('keeps replaced files as noncurrent versions for the configured days only', () => {
      const [[, bucket] = ['', {}]] = resourcesOf(dev.template('data'), 'AWS::S3::Bucket').filter(([id]) =>
        id.startsWith('WarehouseBucket'),
      );
      expect((bucket.Properties as { LifecycleConfiguration: Props }).LifecycleConfiguration.Rules).toEqual([
        expect.objectContaining({ Id: 'expire-replaced-files', NoncurrentVersionExpiration: { NoncurrentDays: 7 } }),
      ]);
    });
  });

  describe('Athena', () => {
    it('runs every query in a workgroup that enforces its settings, encrypts results with the data key and caps scans', () => {
      dev.template('data').hasResourceProperties('AWS::Athena::WorkGroup', {
        Name: 'cdc-sync-dev',
        RecursiveDeleteOption: true,
        WorkGroupConfiguration: {
          EnforceWorkGroupConfiguration: true,
          PublishCloudWatchMetricsEnabled: true,
          BytesScannedCutoffPerQuery: 100 * 1024 ** 3,
          EngineVersion: { SelectedEngineVersion: 'Athena engine version 3' },
          ResultConfiguration: {
            OutputLocation: {
              'Fn::Join': ['', ['s3://', { Ref: Match.stringLikeRegexp('AthenaResults') }, '/results/']],
            },
            EncryptionConfiguration: {
              EncryptionOption: 'SSE_KMS',
              KmsKey: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DataKey'), 'Arn'] },
            },
          },
        },
      });
      prod.template('data').hasResourceProperties('AWS::Athena::WorkGroup', {
        RecursiveDeleteOption: false,
        WorkGroupConfiguration: Match.objectLike({ BytesScannedCutoffPerQuery: 500 * 1024 ** 3 }),
      });
    });

    it("saves current state, history, a key's history and changes per hour of each table as named queries", () => {
      const queries = resourcesOf(dev.template('data'), 'AWS::Athena::NamedQuery').map(([, r]) => r.Properties ?? {});
      const orders = queries.filter((q) => String(q.Name).startsWith('orders.public.orders:'));
      expect(orders.map((q) => q.Name)).toEqual([
        'orders.public.orders: current state',
        'orders.public.orders: history',
        'orders.public.orders: history of a key',
        'orders.public.orders: changes per hour',
      ]);
      for (const q of queries) expect(q).toMatchObject({ Database: 'cdc_sync_dev', WorkGroup: 'cdc-sync-dev' });
      const sql = Object.fromEntries(orders.map((q) => [String(q.Name).split(': ')[1], String(q.QueryString)]));
      expect(sql['current state']).toBe('SELECT * FROM "cdc_sync_dev"."orders_public_orders_current"');
      expect(sql['history of a key']).toContain('WHERE dt >= ? AND "id" = ?');
      expect(sql.history).toContain('PARTITION BY _cdc_id');
      expect(sql['changes per hour']).toContain('count(DISTINCT _cdc_id)');
      // Keyless or uncatalogued: no current state, keys matched as _cdc_key text.
      const stock = queries.filter((q) => String(q.Name).startsWith('inventory.inventory.stock:'));
      expect(stock.map((q) => String(q.Name).split(': ')[1])).toEqual([
        'history',
        'history of a key',
        'changes per hour',
      ]);
      expect(String(stock[1]?.QueryString)).toContain('_cdc_key = ?');
    });
  });

  describe('current-state function', () => {
    it('runs the merge on the configured rate and the Iceberg maintenance daily, each through its own role', () => {
      const schedules = resourcesOf(dev.template('lanes'), 'AWS::Scheduler::Schedule').map(
        ([, r]) => r.Properties ?? {},
      );
      const byName = Object.fromEntries(schedules.map((s) => [s.Name, s]));
      expect(byName['cdc-sync-dev-current-state-merge']).toMatchObject({
        ScheduleExpression: 'rate(5 minutes)',
        State: 'ENABLED',
        Target: { Input: '{"task":"merge"}', RetryPolicy: { MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 300 } },
      });
      expect(byName['cdc-sync-dev-current-state-maintenance']).toMatchObject({
        ScheduleExpression: 'cron(30 3 * * ? *)',
        Target: { Input: '{"task":"maintain"}' },
      });
      expect(byName['cdc-sync-dev-compaction']).toMatchObject({ ScheduleExpression: 'rate(1 hour)' });
      const prodMerge = resourcesOf(prod.template('lanes'), 'AWS::Scheduler::Schedule')
        .map(([, r]) => r.Properties ?? {})
        .find((s) => s.Name === 'cdc-sync-prod-current-state-merge');
      expect(prodMerge?.ScheduleExpression).toBe('rate(1 minute)');
    });

    it('lets the schedules invoke exactly their function, from this account only', () => {
      const roles = resourcesOf(dev.template('lanes'), 'AWS::IAM::Role').filter(([id]) => /ScheduleRole/.test(id));
      expect(roles).toHaveLength(2);
      for (const [, role] of roles) {
        expect(role.Properties?.AssumeRolePolicyDocument).toMatchObject({
          Statement: [
            {
              Principal: { Service: 'scheduler.amazonaws.com' },
              Condition: { StringEquals: { 'aws:SourceAccount': '111111111111' } },
            },
          ],
        });
      }
      const invoke = statementsOfRole(dev.template('lanes'), /^CurrentStateScheduleRole/);
      expect(invoke.flatMap((s) => s.actions)).toEqual(['lambda:InvokeFunction']);
    });

    it('is configured with exactly what its handler parses: the keyed, catalogued tables', () => {
      const variables = (fn(dev, 'current-state').Environment as { Variables: Record<string, unknown> }).Variables;
      const env = Object.fromEntries(
        Object.entries(variables).map(([k, v]) => [k, typeof v === 'string' ? v : render(v)]),
      );
      const parsed = CurrentStateEnvSchema.safeParse(env);
      expect(parsed.success, JSON.stringify(parsed.error?.issues)).toBe(true);
      expect(parsed.data).toMatchObject({
        GLUE_DATABASE: 'cdc_sync_dev',
        ATHENA_WORKGROUP: 'cdc-sync-dev',
        CURRENT_STATE_TABLES: ['orders_public_orders_changes'],
        // dev's warehouse lane times out after 120 s; Kafka keeps 72 h.
        OVERLAP_SECONDS: 180,
        LOOKBACK_HOURS: 96,
        LEASE_SECONDS: 600,
      });
      expect(env.CURRENT_STATE_LOCATION).toBe('s3://<Fn::ImportValue>/current/');
      expect(fn(prod, 'current-state').Environment).toMatchObject({
        Variables: { CURRENT_STATE_TABLES: 'orders_public_orders_changes,orders_public_customers_changes' },
      });
    });

    it('may run Athena in its workgroup, read its change logs and own its Iceberg tables, and nothing more', () => {
      const statements = statementsOfRole(dev.template('lanes'), /^CurrentStateFunctionServiceRole/);
      const on = (action: string) => statements.filter((s) => s.actions.includes(action)).flatMap((s) => s.resources);
      expect(on('athena:StartQueryExecution')).toEqual([
        'arn:aws:athena:eu-west-1:111111111111:workgroup/cdc-sync-dev',
      ]);
      expect(on('glue:CreateTable')).toEqual([
        'arn:aws:glue:eu-west-1:111111111111:catalog',
        'arn:aws:glue:eu-west-1:111111111111:database/cdc_sync_dev',
        'arn:aws:glue:eu-west-1:111111111111:table/cdc_sync_dev/orders_public_orders_current',
        'arn:aws:glue:eu-west-1:111111111111:table/cdc_sync_dev/orders_public_orders_deleted',
      ]);
      expect(on('glue:UpdateTable')).not.toContain(
        'arn:aws:glue:eu-west-1:111111111111:table/cdc_sync_dev/orders_public_orders_changes',
      );
      expect(on('s3:GetObject')).toContain('<Fn::ImportValue>/changes/table=orders.public.orders/*');
      expect(on('s3:DeleteObject')).toEqual([
        '<Fn::ImportValue>/current/orders_public_orders_current/*',
        '<Fn::ImportValue>/current/orders_public_orders_deleted/*',
      ]);
      const dynamo = statements.filter((s) => s.actions.some((a) => a.startsWith('dynamodb:')));
      expect(dynamo.flatMap((s) => s.actions)).toEqual(['dynamodb:UpdateItem']);
      dev.template('lanes').hasResourceProperties('AWS::IAM::Policy', {
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Action: 'dynamodb:UpdateItem',
              Condition: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['cs#*'] } },
            }),
          ]),
        },
      });
    });

    it('is absent when current state is disabled', () => {
      const off = synthesize(
        variant(dev.config, (d) => {
          d.currentState.enabled = false;
        }),
      );
      expect(() => fn(off, 'current-state')).toThrow(/no current-state function/);
      off
        .template('observability')
        .resourcePropertiesCountIs('AWS::CloudWatch::Alarm', { MetricName: 'CurrentStateFreshness' }, 0);
    });
  });

  describe('compaction', () => {
    it('is the only function that may delete change-log files', () => {
      const compaction = statementsOfRole(dev.template('lanes'), /^CompactionFunctionServiceRole/);
      const deletes = compaction.filter((s) => s.actions.includes('s3:DeleteObject')).flatMap((s) => s.resources);
      expect(deletes.sort()).toEqual(['<Fn::ImportValue>/changes/_compaction/*', '<Fn::ImportValue>/changes/table=*']);
      const others = statementsOfRole(dev.template('lanes'), /^(?!Compaction)/).filter((s) =>
        s.resources.some((r) => r.includes('/changes/')),
      );
      expect(others.filter((s) => s.actions.includes('s3:DeleteObject'))).toEqual([]);
    });

    it('compacts days closed for the configured hours', () => {
      expect(fn(dev, 'compaction').Environment).toMatchObject({
        Variables: { WAREHOUSE_PREFIX: 'changes/', CLOSED_AFTER_HOURS: '6' },
      });
    });
  });

  describe('alarms', () => {
    it('alarms when the stalest current-state table stays behind the bound for the whole bound, or the merge stops', () => {
      // dev: a run every 5 minutes, a 600 s bound: two periods of 5 minutes, both breaching.
      const metric = (period: number) => [
        Match.objectLike({
          MetricStat: {
            Metric: {
              Namespace: 'cdc-sync',
              MetricName: 'CurrentStateFreshness',
              Dimensions: [{ Name: 'service', Value: 'cdc-sync-current-state' }],
            },
            Period: period,
            Stat: 'Maximum',
          },
        }),
      ];
      dev.template('observability').hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: 'cdc-sync-dev-current-state-freshness',
        Metrics: metric(300),
        Threshold: 600,
        EvaluationPeriods: 2,
        DatapointsToAlarm: 2,
        ComparisonOperator: 'GreaterThanThreshold',
        TreatMissingData: 'breaching',
        AlarmActions: [{ Ref: Match.stringLikeRegexp('AlarmTopic') }],
      });
      prod.template('observability').hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: 'cdc-sync-prod-current-state-freshness',
        Metrics: metric(60),
        Threshold: 300,
        EvaluationPeriods: 5,
      });
    });

    it('alarms on failed runs of the merge and of the compaction', () => {
      const names = resourcesOf(dev.template('observability'), 'AWS::CloudWatch::Alarm').map(([, r]) =>
        String(r.Properties?.AlarmName),
      );
      expect(names).toContain('cdc-sync-dev-current-state-Fault-Count-Critical');
      expect(names).toContain('cdc-sync-dev-compaction-Fault-Count-Warning');
    });
  });

  describe('configuration', () => {
    it.each<[string, (d: Parameters<Parameters<typeof variant>[1]>[0]) => void, RegExp]>([
      [
        'a freshness bound shorter than two runs',
        (d) => {
          d.currentState = { scheduleMinutes: 5, freshnessBoundSeconds: 300 };
        },
        /currentState.freshnessBoundSeconds 300 must be a whole number of seconds from two runs \(600, scheduleMinutes 5\)/,
      ],
      [
        'a schedule of more than an hour',
        (d) => {
          d.currentState = { scheduleMinutes: 90 };
        },
        /currentState.scheduleMinutes 90 must be a whole number of minutes, 1–60/,
      ],
      [
        'a start day that is no day',
        (d) => {
          d.data.changeLogStartDate = '2026-13-45';
        },
        /data.changeLogStartDate '2026-13-45' must be a day/,
      ],
      [
        'compaction of days still open',
        (d) => {
          d.data.compaction = { closedAfterHours: 0 };
        },
        /data.compaction.closedAfterHours 0 must be a whole number of hours, 1–168/,
      ],
      [
        'two tables whose Glue names fold together',
        (d) => {
          d.sources[0]?.tables.push({ name: 'public.ORDERS', partitions: 1 });
        },
        /tables orders.public.orders, orders.public.ORDERS would share the Glue table name 'orders_public_orders_changes'/,
      ],
      [
        'more tables than the current-state function can be told about',
        (d) => {
          const many = Array.from({ length: 120 }, (_, i) => ({
            name: `public.table_with_a_long_name_${i}`,
            partitions: 1,
          }));
          d.sources[0]?.tables.push(...many);
        },
        /make a table list of \d+ characters, more than the 3000/,
      ],
    ])('rejects %s', (_what, breakage, message) => {
      expect(validateConfig(variant(dev.config, breakage)).join('\n')).toMatch(message);
    });
  });
});
