// s3rver for the storage tests, run as a child process by storage-servers.ts:
//   node s3rver-server.mjs DATA_DIR PORT BUCKET
//
// s3rver 3.7 does not implement AbortMultipartUpload (405) or ListMultipartUploads
// (501), which the S3 driver uses to clean up and check a failed upload. Both are added
// here in front of s3rver's own routes, over s3rver's own on-disk layout
// (<dir>/<bucket>/._S3rver_uploads/<uploadId>/{key,metadata,<part>}), so that the
// conformance suite can check that no incomplete upload is left behind. Test use only:
// these two routes do not check signatures.
//
// s3rver also writes an object in place (a reader or a concurrent writer of the same key
// sees it half-written) and answers a PutObject with a Buffer body before the bytes are
// on disk. S3 replaces objects atomically; so does PutObject here: written to a temporary
// file (which s3rver's listing ignores), then renamed.
//
// BACKUPCTL_S3RVER_PLAIN=1 leaves s3rver as it ships (the driver must then warn that it
// cannot abort an upload).
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import S3rver from 's3rver';
import FilesystemStore from 's3rver/lib/stores/filesystem.js';

async function atomicPutObject(object) {
  const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
  await mkdir(path.dirname(objectPath), { recursive: true });
  const temp = `${objectPath}.${randomBytes(6).toString('hex')}.tmp`;
  const md5 = createHash('md5');
  let size = 0;
  const count = new Transform({
    transform(chunk, _encoding, callback) {
      md5.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
  });
  const source = Buffer.isBuffer(object.content) ? [object.content] : object.content;
  try {
    await pipeline(source, count, createWriteStream(temp));
    await rename(temp, objectPath);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  const digest = md5.digest('hex');
  await this.putMetadata(object.bucket, object.key, object.metadata, digest);
  return { size, md5: digest };
}

const [directory, port, bucket] = process.argv.slice(2);
const uploadsDir = (name) => path.join(directory, name, '._S3rver_uploads');
const xml = (text) => text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);

async function uploadsApi(ctx, next) {
  const segments = ctx.path.split('/').filter(Boolean);
  const name = segments[0];
  if (ctx.method === 'DELETE' && segments.length > 1 && typeof ctx.query.uploadId === 'string') {
    const dir = path.join(uploadsDir(name), path.basename(ctx.query.uploadId));
    const exists = await stat(dir).then(() => true, () => false);
    if (!exists) {
      ctx.status = 404;
      ctx.type = 'application/xml';
      ctx.body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message></Error>';
      return;
    }
    await rm(dir, { recursive: true, force: true });
    ctx.status = 204;
    return;
  }
  if (ctx.method === 'GET' && segments.length === 1 && 'uploads' in ctx.query) {
    const prefix = typeof ctx.query.prefix === 'string' ? ctx.query.prefix : '';
    const entries = [];
    for (const id of await readdir(uploadsDir(name)).catch(() => [])) {
      const key = await readFile(path.join(uploadsDir(name), id, 'key'), 'utf8').catch(() => null);
      if (key === null || !key.startsWith(prefix)) continue;
      const { mtime } = await stat(path.join(uploadsDir(name), id));
      entries.push({ key, id, initiated: mtime.toISOString() });
    }
    entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.id < b.id ? -1 : 1));
    ctx.status = 200;
    ctx.type = 'application/xml';
    ctx.body =
      '<?xml version="1.0" encoding="UTF-8"?>\n' +
      '<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
      `<Bucket>${xml(name)}</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker><Prefix>${xml(prefix)}</Prefix>` +
      '<MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>' +
      entries
        .map((e) => `<Upload><Key>${xml(e.key)}</Key><UploadId>${xml(e.id)}</UploadId><Initiated>${e.initiated}</Initiated><StorageClass>STANDARD</StorageClass></Upload>`)
        .join('') +
      '</ListMultipartUploadsResult>';
    return;
  }
  await next();
}

const server = new S3rver({
  port: Number(port),
  address: '127.0.0.1',
  directory,
  silent: true,
  configureBuckets: [{ name: bucket, configs: [] }],
});
if (process.env.BACKUPCTL_S3RVER_PLAIN !== '1') {
  server.middleware.unshift(uploadsApi);
  FilesystemStore.prototype.putObject = atomicPutObject;
}
await server.run();
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
});
