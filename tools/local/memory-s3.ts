/**
 * S3 in memory, for throw-away local runs: fauxqs's S3 API (the same server that emulates SQS), with its listing
 * order fixed.
 *
 * Why not s3rver here: s3rver keeps every object as two files and runs each request through a dozen file-system calls
 * (bucket stat, subresource lookups, mkdir, object and metadata files), about 1.5 ms of CPU per PUT on this project's
 * 2-core machine against 0.3 ms for fauxqs's map. The local pipeline writes one object per topic-partition per
 * invocation in two lanes, so at 1,000 changes/s that difference is about a fifth of the CPU of a round
 * (docs/benchmarks.md). s3rver stays where state must outlive the process (`npm run invoke`, `npm start --keep`).
 *
 * The fix: fauxqs 1.9 sorts a listing with `localeCompare` but pages with `<=` on the marker, so as soon as a listing
 * needs a second page, keys whose locale order and byte order disagree (mixed case: `Orders` vs `customers`) are
 * skipped or listed twice. S3 lists in UTF-8 byte order; so does this replacement of `S3Store.listObjects`.
 */

interface StoredObject {
  key: string;
}
interface ListOptions {
  prefix?: string;
  delimiter?: string;
  maxKeys?: number;
  startAfter?: string;
  marker?: string;
}
interface S3StoreLike {
  buckets: Map<string, Map<string, StoredObject>>;
  listObjects(
    bucket: string,
    options?: ListOptions,
  ): { objects: StoredObject[]; commonPrefixes: string[]; isTruncated: boolean };
}

/** UTF-16 code units reordered so that comparing them compares UTF-8 bytes (surrogates after the rest of the BMP). */
function utf8Order(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000;
  return unit >= 0xe000 ? unit - 0x800 : unit;
}

/** Compares two strings by their UTF-8 bytes, as S3 orders keys. */
export function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return utf8Order(x) - utf8Order(y);
  }
  return a.length - b.length;
}

/** S3 listing semantics over one bucket's objects, in byte order. */
function listInByteOrder(
  objects: Iterable<StoredObject>,
  options: ListOptions = {},
): { objects: StoredObject[]; commonPrefixes: string[]; isTruncated: boolean } {
  const prefix = options.prefix ?? '';
  const { delimiter } = options;
  const maxKeys = options.maxKeys ?? 1000;
  const after = options.startAfter ?? options.marker ?? '';
  const sorted = [...objects]
    .filter((o) => o.key.startsWith(prefix) && (after === '' || compareUtf8(o.key, after) > 0))
    .sort((a, b) => compareUtf8(a.key, b.key));
  const listed: StoredObject[] = [];
  const prefixes: string[] = [];
  let isTruncated = false;
  for (const object of sorted) {
    let common: string | undefined;
    if (delimiter) {
      const at = object.key.indexOf(delimiter, prefix.length);
      if (at >= 0) common = object.key.slice(0, at + delimiter.length);
    }
    // Keys of a common prefix are consecutive in byte order: the prefix counts once, when first met.
    if (common !== undefined && (prefixes.at(-1) === common || compareUtf8(common, after) <= 0)) continue;
    if (listed.length + prefixes.length >= maxKeys) {
      isTruncated = true;
      break;
    }
    if (common === undefined) listed.push(object);
    else prefixes.push(common);
  }
  return { objects: listed, commonPrefixes: prefixes, isTruncated };
}

let patched: Promise<void> | undefined;

/** Makes fauxqs list S3 keys in byte order (once per process). Call before serving S3 requests from fauxqs. */
export function fixFauxqsListing(): Promise<void> {
  patched ??= (async () => {
    // fauxqs exports only its entry point; its S3 store is a sibling module of it.
    const url = new URL('./s3/s3Store.js', import.meta.resolve('fauxqs'));
    const { S3Store } = (await import(url.href)) as { S3Store: { prototype: S3StoreLike } };
    const original = S3Store.prototype.listObjects;
    S3Store.prototype.listObjects = function listObjects(this: S3StoreLike, bucket, options) {
      const objects = this.buckets.get(bucket);
      // The original throws the NoSuchBucket error the API expects.
      if (!objects) return original.call(this, bucket, options);
      return listInByteOrder(objects.values(), options);
    };
  })();
  return patched;
}
