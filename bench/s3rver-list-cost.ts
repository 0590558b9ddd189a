/**
 * How s3rver's ListObjectsV2 cost grows: one page (MaxKeys 1000) requested at several
 * StartAfter positions of one profile's keys, and a delimiter listing of the root.
 *   tsx bench/s3rver-list-cost.ts <s3rver data dir> [bucket] [prefix]
 * (a copy of the data dir of `npm run bench:catalog`'s s3rver; started here on loopback).
 */
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const [dataDir, bucket = 'backups', prefix = 'bench/app/'] = process.argv.slice(2);
if (!dataDir) throw new Error('usage: tsx bench/s3rver-list-cost.ts <s3rver data dir> [bucket] [prefix]');
const port = 40000 + Math.floor(Math.random() * 10000);
const server = spawn(process.execPath, ['--openssl-legacy-provider', path.join(ROOT, 'test/helpers/s3rver-server.mjs'), dataDir, String(port), bucket], { stdio: 'ignore' });
try {
  const client = new S3Client({ endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  for (let i = 0; i < 50; i++) {
    try {
      await client.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1 }));
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const keys = readdirSync(path.join(dataDir, bucket, prefix)).filter((n) => n.endsWith('._S3rver_object')).map((n) => prefix + n.slice(0, -'._S3rver_object'.length)).sort();
  const time = async (what: string, input: Record<string, unknown>) => {
    const runs: number[] = [];
    let n = 0;
    for (let r = 0; r < 3; r++) {
      const t0 = performance.now();
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1000, ...input }));
      runs.push(performance.now() - t0);
      n = (page.Contents?.length ?? 0) + (page.CommonPrefixes?.length ?? 0);
    }
    runs.sort((a, b) => a - b);
    console.log(`${what.padEnd(44)} ${String(n).padStart(5)} keys  ${runs[1]!.toFixed(0).padStart(5)} ms (median of 3)`);
  };
  console.log(`${keys.length} keys under ${prefix}`);
  for (const at of [0, 0.25, 0.5, 0.75, 0.97]) {
    const i = Math.floor(keys.length * at);
    await time(`page at key ${i}${i === 0 ? '' : ` (StartAfter)`}`, i === 0 ? { Prefix: prefix } : { Prefix: prefix, StartAfter: keys[i - 1] });
  }
  await time('MaxKeys 10 at the last 1%', { Prefix: prefix, StartAfter: keys[Math.floor(keys.length * 0.99)], MaxKeys: 10 });
  await time('root, Delimiter "/"', { Prefix: 'bench/', Delimiter: '/' });
  let pages = 0;
  const t0 = performance.now();
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token, MaxKeys: 1000 }));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
    pages += 1;
  } while (token);
  console.log(`whole listing: ${pages} pages in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
} finally {
  server.kill('SIGTERM');
}
