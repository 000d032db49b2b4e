/**
 * Which objects appeared (or were rewritten) under the lanes' S3 prefixes since a baseline: how the warehouse and
 * audit probes find the file that holds the canary without reading the whole log.
 *
 * The logs only grow, and both are split into append-only streams whose object names start with a zero-padded
 * number that only rises: an audit chain `<prefix><topic>/<partition>/<epoch>/` names its objects by their first
 * sequence number, and the warehouse names a table's files of one day by topic, partition and first Kafka offset
 * (`…/date=<day>/<topic>+<partition>+<offset>+…`). The heartbeat table's log gains an object per heartbeat (every
 * 10 s in AWS: millions in a year), so listing it all on every poll is not an option. Instead the baseline finds each
 * stream's last object by a search over that number (ListObjects with a marker and one key: about 2·log2(last
 * number) requests), and from then on only what sorts after it is listed.
 *
 * The last object at the baseline is listed again on every poll, and read when its ETag changes: a retried batch that
 * picked up more records rewrites the key it wrote before, canary included. A stream that was not there at the
 * baseline (a new partition, chain or day) is new, and listed from its start.
 */
import { ListObjectsCommand, type S3Client } from '@aws-sdk/client-s3';

/** An append-only run of objects `<prefix><number, zero-padded to width><rest>`, written in rising number order. */
export interface KeyStream {
  prefix: string;
  width: number;
}

/** An object as listed: a different ETag under the same key is a rewrite. */
export interface ListedObject {
  key: string;
  etag: string;
}

/** Every object after `marker` under the prefix (ListObjects v1: s3rver cannot make v2 continuation tokens on Node 20). */
export async function listAll(
  s3: S3Client,
  input: { bucket: string; prefix: string; marker?: string },
): Promise<ListedObject[]> {
  const objects: ListedObject[] = [];
  let marker = input.marker;
  for (;;) {
    const page = await s3.send(
      new ListObjectsCommand({ Bucket: input.bucket, Prefix: input.prefix, ...(marker ? { Marker: marker } : {}) }),
    );
    const keys = (page.Contents ?? []).filter((o) => o.Key !== undefined);
    objects.push(...keys.map((o) => ({ key: o.Key as string, etag: o.ETag ?? '' })));
    const last = keys.at(-1)?.Key;
    if (!page.IsTruncated || last === undefined) return objects;
    marker = last;
  }
}

/**
 * The prefixes one level below `prefix` (each ending in the one-character `delimiter`), found by skipping: the first
 * key after a marker names the next sub-prefix, and the marker then jumps past all of its keys (the delimiter's
 * successor character sorts right after them). One request per sub-prefix, and no reliance on the delimiter
 * parameter, which the local s3rver ignores for keys in folders.
 */
export async function subPrefixes(s3: S3Client, bucket: string, prefix: string, delimiter: string): Promise<string[]> {
  const after = String.fromCharCode(delimiter.charCodeAt(0) + 1);
  const found: string[] = [];
  let marker: string | undefined;
  for (;;) {
    const page = await s3.send(
      new ListObjectsCommand({ Bucket: bucket, Prefix: prefix, MaxKeys: 1, ...(marker ? { Marker: marker } : {}) }),
    );
    const key = page.Contents?.[0]?.Key;
    if (key === undefined) return found;
    const end = key.indexOf(delimiter, prefix.length);
    if (end < 0) {
      // A key right under the prefix, not in a sub-prefix: step over it.
      marker = key;
      continue;
    }
    const sub = key.slice(0, end + 1);
    found.push(sub);
    marker = sub.slice(0, -1) + after;
  }
}

const pad = (n: number, width: number) => String(n).padStart(width, '0');

/**
 * The number of the stream's last object, or undefined when it has none: a galloping search, then a binary one, each
 * step asking S3 for the first key at or after a number.
 */
export async function lastNumber(s3: S3Client, bucket: string, stream: KeyStream): Promise<number | undefined> {
  const { prefix, width } = stream;
  /** The smallest number ≥ n that has an object (keys of n sort after the bare `pad(n)` marker). */
  const atOrAfter = async (n: number): Promise<number | undefined> => {
    const page = await s3.send(
      new ListObjectsCommand({
        Bucket: bucket,
        Prefix: prefix,
        MaxKeys: 1,
        ...(n > 0 ? { Marker: prefix + pad(n, width) } : {}),
      }),
    );
    const digits = page.Contents?.[0]?.Key?.slice(prefix.length, prefix.length + width);
    // Names that are not numbered (the warehouse's `+redrive+` files) sort after the numbered ones.
    return digits !== undefined && /^\d+$/.test(digits) && digits.length === width ? Number(digits) : undefined;
  };
  let low = await atOrAfter(0);
  if (low === undefined) return undefined;
  // Invariant: `low` has an object; none has a number ≥ `high`.
  let high: number | undefined;
  for (let step = 1; high === undefined; step *= 2) {
    const found = await atOrAfter(low + step);
    if (found === undefined) high = low + step;
    else low = found;
  }
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    const found = await atOrAfter(middle);
    if (found === undefined) high = middle;
    else low = found;
  }
  return low;
}

/** New and rewritten objects of a set of streams, since {@link NewObjects.baseline}. */
export class NewObjects {
  /** Stream prefix → where its listings start (the bare number of its last object at the baseline). */
  private readonly markers = new Map<string, string>();
  /** Key → ETag of every object known not to need reading (there before the canary, or read). */
  private readonly known = new Map<string, string>();

  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    /** The streams there are now (a listing of the folders; called on every baseline and poll). */
    private readonly streams: () => Promise<KeyStream[]>,
  ) {}

  /** Takes note of what is there now: none of it is reported as new (unless rewritten). */
  async baseline(): Promise<void> {
    await Promise.all(
      (await this.streams()).map(async (stream) => {
        const last = await lastNumber(this.s3, this.bucket, stream);
        const marker = last === undefined ? undefined : stream.prefix + pad(last, stream.width);
        if (marker !== undefined) this.markers.set(stream.prefix, marker);
        for (const o of await this.list(stream)) this.known.set(o.key, o.etag);
      }),
    );
  }

  /** Objects not read yet: new since the baseline, or rewritten since they were read. */
  async unread(): Promise<ListedObject[]> {
    const found = await Promise.all((await this.streams()).map((stream) => this.list(stream)));
    return found.flat().filter((o) => this.known.get(o.key) !== o.etag);
  }

  /** The object (as listed) was read: it is only reported again when rewritten. */
  read(object: ListedObject): void {
    this.known.set(object.key, object.etag);
  }

  private async list(stream: KeyStream): Promise<ListedObject[]> {
    const marker = this.markers.get(stream.prefix);
    return listAll(this.s3, { bucket: this.bucket, prefix: stream.prefix, ...(marker ? { marker } : {}) });
  }
}
