import { S3WarehouseSink } from '../adapters/s3-warehouse-sink';
import type { SinkFactory } from '../shared/lane-deps';

/** The warehouse lane's sink: the Parquet change log in S3. */
export const createWarehouseSink: SinkFactory<'warehouse'> = (env, clients) =>
  new S3WarehouseSink(clients.s3, { bucket: env.WAREHOUSE_BUCKET, prefix: env.WAREHOUSE_PREFIX });
