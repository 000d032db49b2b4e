CREATE TABLE IF NOT EXISTS cdc_sync_dev.pg_public_products_current (`id` bigint, `sku` string, `name` string, `price` string, `weight_kg` string, `attributes` string, `tags` string, `description` string, `_cdc_key` string, `_cdc_order` string, `_cdc_op` string, `_cdc_commit_ts` timestamp, `_cdc_unsent` string) LOCATION 's3://warehouse-bucket/current/products/' TBLPROPERTIES ('table_type' = 'ICEBERG', 'format' = 'parquet', 'write_compression' = 'zstd');

CREATE TABLE IF NOT EXISTS cdc_sync_dev.pg_public_products_deleted (`_cdc_key` string, `_cdc_order` string) LOCATION 's3://warehouse-bucket/current/products_deleted/' TBLPROPERTIES ('table_type' = 'ICEBERG', 'format' = 'parquet', 'write_compression' = 'zstd');

MERGE INTO cdc_sync_dev.pg_public_products_deleted AS d
USING (
  SELECT '*' AS _cdc_key, max(_cdc_order) AS _cdc_order
  FROM cdc_sync_dev.pg_public_products_changes
  WHERE _cdc_table = 'pg.public.products' AND _cdc_processed_at > TIMESTAMP '2026-01-02 03:04:05.006' AND _cdc_processed_at <= TIMESTAMP '2026-01-02 03:09:05.006' AND _cdc_op = 't'
  HAVING max(_cdc_order) IS NOT NULL
) AS s
ON d._cdc_key = s._cdc_key
WHEN MATCHED AND s._cdc_order > d._cdc_order THEN UPDATE SET _cdc_order = s._cdc_order
WHEN NOT MATCHED THEN INSERT (_cdc_key, _cdc_order) VALUES (s._cdc_key, s._cdc_order);

DELETE FROM cdc_sync_dev.pg_public_products_current WHERE _cdc_order < (SELECT _cdc_order FROM cdc_sync_dev.pg_public_products_deleted WHERE _cdc_key = '*');

MERGE INTO cdc_sync_dev.pg_public_products_current AS t
USING (
  WITH range_changes AS (
    SELECT CAST(_cdc_key AS VARCHAR) AS _cdc_key, _cdc_op, _cdc_order, _cdc_commit_ts, _cdc_unchanged,
      CAST("id" AS BIGINT) AS "id",
      CAST("sku" AS VARCHAR) AS "sku",
      CAST("name" AS VARCHAR) AS "name",
      CAST("price" AS VARCHAR) AS "price",
      CAST("weight_kg" AS VARCHAR) AS "weight_kg",
      CAST("attributes" AS VARCHAR) AS "attributes",
      CAST("tags" AS VARCHAR) AS "tags",
      CAST("description" AS VARCHAR) AS "description"
    FROM cdc_sync_dev.pg_public_products_changes
    WHERE _cdc_table = 'pg.public.products' AND _cdc_processed_at > TIMESTAMP '2026-01-02 03:04:05.006' AND _cdc_processed_at <= TIMESTAMP '2026-01-02 03:09:05.006'
  ),
  range_latest AS (
    SELECT _cdc_key, max(_cdc_order) AS _cdc_order, max_by(_cdc_op, _cdc_order) AS _cdc_op,
      max_by(_cdc_commit_ts, _cdc_order) AS _cdc_commit_ts,
      max_by("id", _cdc_order) FILTER (WHERE NOT coalesce(json_array_contains(_cdc_unchanged, 'id'), false)) AS "id",
      bool_or(NOT coalesce(json_array_contains(_cdc_unchanged, 'id'), false)) AS _cdc_sent_0,
      max_by("sku", _cdc_order) FILTER (WHERE NOT coalesce(json_array_contains(_cdc_unchanged, 'sku'), false)) AS "sku",
      bool_or(NOT coalesce(json_array_contains(_cdc_unchanged, 'sku'), false)) AS _cdc_sent_1,
      max_by("name", _cdc_order) FILTER (WHERE NOT coalesce(json_array_contains(_cdc_unchanged, 'name'), false)) AS "name",
      bool_or(NOT coalesce(json_array_contains(_cdc_unchanged, 'name'), false)) AS _cdc_sent_2,
      max_by("price", _cdc_order) FILTER (WHERE NOT coalesce(json_array_contains(_cdc_unchanged, 'price'), false)) AS "price",
      bool_or(NOT coalesce(json_array_contains(_cdc_unchanged, 'price'), false)) AS _cdc_sent_3,
      max_by("weight_kg", _cdc_order) FILTER (WHERE NOT coalesce(json_array_contains(_cdc_unchanged, 'weight_kg'), false)) AS "weight_kg",
      bool_or(NOT coalesce(json_array_contains(_cdc_unchanged, 'weight_kg'), false)) AS _cdc_sent_4,
      max_by("attributes", _cdc_order) FILTER (WHERE NOT coalesce(json_array_contains(_cdc_unchanged, 'attributes'), false)) AS "attributes",
      bool_or(NOT coalesce(json_array_contains(_cdc_unchanged, 'attributes'), false)) AS _cdc_sent_5,
      max_by("tags", _cdc_order) FILTER (WHERE NOT coalesce(json_array_contains(_cdc_unchanged, 'tags'), false)) AS "tags",
      bool_or(NOT coalesce(json_array_contains(_cdc_unchanged, 'tags'), false)) AS _cdc_sent_6,
      max_by("description", _cdc_order) FILTER (WHERE NOT coalesce(json_array_contains(_cdc_unchanged, 'description'), false)) AS "description",
      bool_or(NOT coalesce(json_array_contains(_cdc_unchanged, 'description'), false)) AS _cdc_sent_7
    FROM range_changes
    WHERE _cdc_op <> 't' AND _cdc_key IS NOT NULL AND _cdc_order > coalesce((SELECT _cdc_order FROM cdc_sync_dev.pg_public_products_deleted WHERE _cdc_key = '*'), '')
    GROUP BY _cdc_key
  )
  SELECT range_latest.*, gone._cdc_order AS _cdc_deleted_at,
    ',' || CASE WHEN NOT range_latest._cdc_sent_0 THEN 'id,' ELSE '' END || CASE WHEN NOT range_latest._cdc_sent_1 THEN 'sku,' ELSE '' END || CASE WHEN NOT range_latest._cdc_sent_2 THEN 'name,' ELSE '' END || CASE WHEN NOT range_latest._cdc_sent_3 THEN 'price,' ELSE '' END || CASE WHEN NOT range_latest._cdc_sent_4 THEN 'weight_kg,' ELSE '' END || CASE WHEN NOT range_latest._cdc_sent_5 THEN 'attributes,' ELSE '' END || CASE WHEN NOT range_latest._cdc_sent_6 THEN 'tags,' ELSE '' END || CASE WHEN NOT range_latest._cdc_sent_7 THEN 'description,' ELSE '' END AS _cdc_unsent
  FROM range_latest LEFT JOIN cdc_sync_dev.pg_public_products_deleted AS gone ON gone._cdc_key = range_latest._cdc_key
) AS s
ON t._cdc_key = s._cdc_key
WHEN MATCHED AND s._cdc_order > t._cdc_order AND s._cdc_op = 'd' THEN DELETE
WHEN MATCHED AND s._cdc_order > t._cdc_order THEN UPDATE SET
  "id" = CASE WHEN s._cdc_sent_0 THEN s."id" ELSE t."id" END,
  "sku" = CASE WHEN s._cdc_sent_1 THEN s."sku" ELSE t."sku" END,
  "name" = CASE WHEN s._cdc_sent_2 THEN s."name" ELSE t."name" END,
  "price" = CASE WHEN s._cdc_sent_3 THEN s."price" ELSE t."price" END,
  "weight_kg" = CASE WHEN s._cdc_sent_4 THEN s."weight_kg" ELSE t."weight_kg" END,
  "attributes" = CASE WHEN s._cdc_sent_5 THEN s."attributes" ELSE t."attributes" END,
  "tags" = CASE WHEN s._cdc_sent_6 THEN s."tags" ELSE t."tags" END,
  "description" = CASE WHEN s._cdc_sent_7 THEN s."description" ELSE t."description" END,
  _cdc_order = s._cdc_order,
  _cdc_op = s._cdc_op,
  _cdc_commit_ts = s._cdc_commit_ts,
  _cdc_unsent = ',' || CASE WHEN NOT s._cdc_sent_0 AND strpos(coalesce(t._cdc_unsent, ','), ',id,') > 0 THEN 'id,' ELSE '' END || CASE WHEN NOT s._cdc_sent_1 AND strpos(coalesce(t._cdc_unsent, ','), ',sku,') > 0 THEN 'sku,' ELSE '' END || CASE WHEN NOT s._cdc_sent_2 AND strpos(coalesce(t._cdc_unsent, ','), ',name,') > 0 THEN 'name,' ELSE '' END || CASE WHEN NOT s._cdc_sent_3 AND strpos(coalesce(t._cdc_unsent, ','), ',price,') > 0 THEN 'price,' ELSE '' END || CASE WHEN NOT s._cdc_sent_4 AND strpos(coalesce(t._cdc_unsent, ','), ',weight_kg,') > 0 THEN 'weight_kg,' ELSE '' END || CASE WHEN NOT s._cdc_sent_5 AND strpos(coalesce(t._cdc_unsent, ','), ',attributes,') > 0 THEN 'attributes,' ELSE '' END || CASE WHEN NOT s._cdc_sent_6 AND strpos(coalesce(t._cdc_unsent, ','), ',tags,') > 0 THEN 'tags,' ELSE '' END || CASE WHEN NOT s._cdc_sent_7 AND strpos(coalesce(t._cdc_unsent, ','), ',description,') > 0 THEN 'description,' ELSE '' END
WHEN MATCHED AND s._cdc_order < t._cdc_order AND s._cdc_op <> 'd' AND coalesce(t._cdc_unsent, ',') <> ',' THEN UPDATE SET
  "id" = CASE WHEN s._cdc_sent_0 AND strpos(coalesce(t._cdc_unsent, ','), ',id,') > 0 THEN s."id" ELSE t."id" END,
  "sku" = CASE WHEN s._cdc_sent_1 AND strpos(coalesce(t._cdc_unsent, ','), ',sku,') > 0 THEN s."sku" ELSE t."sku" END,
  "name" = CASE WHEN s._cdc_sent_2 AND strpos(coalesce(t._cdc_unsent, ','), ',name,') > 0 THEN s."name" ELSE t."name" END,
  "price" = CASE WHEN s._cdc_sent_3 AND strpos(coalesce(t._cdc_unsent, ','), ',price,') > 0 THEN s."price" ELSE t."price" END,
  "weight_kg" = CASE WHEN s._cdc_sent_4 AND strpos(coalesce(t._cdc_unsent, ','), ',weight_kg,') > 0 THEN s."weight_kg" ELSE t."weight_kg" END,
  "attributes" = CASE WHEN s._cdc_sent_5 AND strpos(coalesce(t._cdc_unsent, ','), ',attributes,') > 0 THEN s."attributes" ELSE t."attributes" END,
  "tags" = CASE WHEN s._cdc_sent_6 AND strpos(coalesce(t._cdc_unsent, ','), ',tags,') > 0 THEN s."tags" ELSE t."tags" END,
  "description" = CASE WHEN s._cdc_sent_7 AND strpos(coalesce(t._cdc_unsent, ','), ',description,') > 0 THEN s."description" ELSE t."description" END,
  _cdc_unsent = ',' || CASE WHEN NOT s._cdc_sent_0 AND strpos(coalesce(t._cdc_unsent, ','), ',id,') > 0 THEN 'id,' ELSE '' END || CASE WHEN NOT s._cdc_sent_1 AND strpos(coalesce(t._cdc_unsent, ','), ',sku,') > 0 THEN 'sku,' ELSE '' END || CASE WHEN NOT s._cdc_sent_2 AND strpos(coalesce(t._cdc_unsent, ','), ',name,') > 0 THEN 'name,' ELSE '' END || CASE WHEN NOT s._cdc_sent_3 AND strpos(coalesce(t._cdc_unsent, ','), ',price,') > 0 THEN 'price,' ELSE '' END || CASE WHEN NOT s._cdc_sent_4 AND strpos(coalesce(t._cdc_unsent, ','), ',weight_kg,') > 0 THEN 'weight_kg,' ELSE '' END || CASE WHEN NOT s._cdc_sent_5 AND strpos(coalesce(t._cdc_unsent, ','), ',attributes,') > 0 THEN 'attributes,' ELSE '' END || CASE WHEN NOT s._cdc_sent_6 AND strpos(coalesce(t._cdc_unsent, ','), ',tags,') > 0 THEN 'tags,' ELSE '' END || CASE WHEN NOT s._cdc_sent_7 AND strpos(coalesce(t._cdc_unsent, ','), ',description,') > 0 THEN 'description,' ELSE '' END
WHEN NOT MATCHED AND s._cdc_op <> 'd' AND (s._cdc_deleted_at IS NULL OR s._cdc_order > s._cdc_deleted_at) THEN INSERT
  ("id", "sku", "name", "price", "weight_kg", "attributes", "tags", "description", _cdc_key, _cdc_order, _cdc_op, _cdc_commit_ts, _cdc_unsent)
  VALUES (s."id", s."sku", s."name", s."price", s."weight_kg", s."attributes", s."tags", s."description", s._cdc_key, s._cdc_order, s._cdc_op, s._cdc_commit_ts, s._cdc_unsent);

MERGE INTO cdc_sync_dev.pg_public_products_deleted AS d
USING (
  SELECT CAST(_cdc_key AS VARCHAR) AS _cdc_key, max(_cdc_order) AS _cdc_order, max_by(_cdc_op, _cdc_order) AS _cdc_op
  FROM cdc_sync_dev.pg_public_products_changes
  WHERE _cdc_table = 'pg.public.products' AND _cdc_processed_at > TIMESTAMP '2026-01-02 03:04:05.006' AND _cdc_processed_at <= TIMESTAMP '2026-01-02 03:09:05.006' AND _cdc_op <> 't' AND _cdc_key IS NOT NULL AND _cdc_order > coalesce((SELECT _cdc_order FROM cdc_sync_dev.pg_public_products_deleted WHERE _cdc_key = '*'), '')
  GROUP BY CAST(_cdc_key AS VARCHAR)
) AS s
ON d._cdc_key = s._cdc_key
WHEN MATCHED AND s._cdc_order > d._cdc_order AND s._cdc_op <> 'd' THEN DELETE
WHEN MATCHED AND s._cdc_order > d._cdc_order THEN UPDATE SET _cdc_order = s._cdc_order
WHEN NOT MATCHED AND s._cdc_op = 'd' THEN INSERT (_cdc_key, _cdc_order) VALUES (s._cdc_key, s._cdc_order);
