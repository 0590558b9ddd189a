/**
 * Notifications about runs: a generic JSON webhook, a Slack-compatible incoming webhook,
 * and healthchecks-style ping URLs (`<url>/start`, `<url>`, `<url>/fail`).
 *
 * Contract:
 * - Sending never throws and never changes the outcome of a run: a target that cannot be
 *   reached after its retries becomes one warning line (through `log.warn`).
 * - Every request is bounded: `timeoutMs` per attempt (default 10 s, through
 *   AbortSignal.timeout, covering the response body too), `retries` further attempts
 *   (default 2) with a short exponential backoff, only for network errors, timeouts, 408,
 *   429 and 5xx answers.
 * - Webhook URLs carry tokens: a URL is only ever printed as `scheme://host/…`.
 */

/**
 * The outcome a target is told about: a run that succeeded, failed (or was interrupted),
 * or found the profile busy (exit 4: another run holds the lock and may still be working;
 * off unless a target lists it).
 */
export type NotifyEventKind = 'success' | 'failure' | 'busy';

export interface NotifyTarget {
  url: string;
  /** Which outcomes are sent; default both. */
  events?: NotifyEventKind[] | undefined;
}

/** The `notify` block of a profile (see config/schema.ts). */
export interface NotifyConfig {
  webhook?: NotifyTarget | undefined;
  slack?: NotifyTarget | undefined;
  /** `commands`: which commands ping (default DEFAULT_HEALTHCHECKS_COMMANDS). */
  healthchecks?: { url: string; commands?: readonly string[] | undefined } | undefined;
  timeoutMs?: number | undefined;
  retries?: number | undefined;
}

export const DEFAULT_NOTIFY_TIMEOUT_MS = 10_000;
export const DEFAULT_NOTIFY_RETRIES = 2;
export const DEFAULT_NOTIFY_EVENTS: readonly NotifyEventKind[] = ['success', 'failure'];
/**
 * A healthchecks check follows one scheduled job, the backup: any other command that
 * pinged success would reset it and hide a backup job that stopped running.
 */
export const DEFAULT_HEALTHCHECKS_COMMANDS: readonly string[] = ['create'];

/** The healthchecks URL when `command` pings it, else null. */
function healthchecksUrl(config: NotifyConfig, command: string): string | null {
  const target = config.healthchecks;
  if (!target) return null;
  return (target.commands ?? DEFAULT_HEALTHCHECKS_COMMANDS).includes(command) ? target.url : null;
}

/** What a finished run tells the targets. Also the body of the generic webhook. */
export interface RunNotice {
  /** `backup.succeeded`, `backup.failed` (create); `<command>.succeeded|failed` for other commands. */
  event: string;
  command: string;
  profile: string;
  id?: string | undefined;
  database?: string | undefined;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  bytes?: number | undefined;
  error?: string | undefined;
  exitCode: number;
  host: string;
}

export interface NotifyLog {
  warn(message: string): void;
  debug(message: string): void;
}

export interface SendOptions {
  /** Overrides the configured retries (an interrupted run sends once). */
  retries?: number;
  /** For tests: the pause between attempts. */
  backoffMs?: (attempt: number) => number;
}

/** `https://hooks.slack.com/…`: scheme and host only, never the path or query (they hold tokens). */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}/…`;
  } catch {
    return '(invalid URL)';
  }
}

function outcomeOf(notice: RunNotice): NotifyEventKind {
  return notice.event.endsWith('.succeeded') ? 'success' : notice.event.endsWith('.busy') ? 'busy' : 'failure';
}

function wants(target: NotifyTarget, kind: NotifyEventKind): boolean {
  return (target.events ?? DEFAULT_NOTIFY_EVENTS).includes(kind);
}

/** `<url>/<suffix>`, keeping the query string where it was. */
export function pingUrl(url: string, suffix: '' | 'start' | 'fail'): string {
  if (suffix === '') return url;
  const parsed = new URL(url);
  parsed.pathname = `${parsed.pathname.replace(/\/+$/, '')}/${suffix}`;
  return parsed.toString();
}

interface Request {
  kind: 'webhook' | 'slack' | 'healthchecks';
  url: string;
  body: string;
  contentType: string;
}

/** Tells healthchecks that a run of `command` started (`<url>/start`), when that command pings it. */
export async function notifyStart(config: NotifyConfig | null | undefined, command: string, log: NotifyLog, options: SendOptions = {}): Promise<void> {
  const url = config ? healthchecksUrl(config, command) : null;
  if (!config || url === null) return;
  await sendAll([{ kind: 'healthchecks', url: pingUrl(url, 'start'), body: '', contentType: 'text/plain; charset=utf-8' }], config, log, options);
}

/** Sends the outcome of a run to every configured target that wants it, in parallel. */
export async function notifyFinish(
  config: NotifyConfig | null | undefined,
  notice: RunNotice,
  log: NotifyLog,
  options: SendOptions = {},
): Promise<void> {
  if (!config) return;
  const kind = outcomeOf(notice);
  const requests: Request[] = [];
  if (config.webhook && wants(config.webhook, kind)) {
    requests.push({ kind: 'webhook', url: config.webhook.url, body: JSON.stringify(webhookBody(notice)), contentType: 'application/json' });
  }
  if (config.slack && wants(config.slack, kind)) {
    requests.push({ kind: 'slack', url: config.slack.url, body: JSON.stringify({ text: slackText(notice) }), contentType: 'application/json' });
  }
  // A busy run says nothing about the backup that holds the lock: healthchecks is not told
  // (a lock that stays busy shows there as missing success pings).
  const ping = healthchecksUrl(config, notice.command);
  if (ping !== null && kind !== 'busy') {
    requests.push({
      kind: 'healthchecks',
      url: pingUrl(ping, kind === 'success' ? '' : 'fail'),
      body: kind === 'success' ? summaryLine(notice) : (notice.error ?? summaryLine(notice)),
      contentType: 'text/plain; charset=utf-8',
    });
  }
  await sendAll(requests, config, log, options);
}

/** The generic webhook's JSON body: the notice, with absent fields left out. */
export function webhookBody(notice: RunNotice): Record<string, unknown> {
  return Object.fromEntries(Object.entries(notice).filter(([, value]) => value !== undefined));
}

function subject(notice: RunNotice): string {
  return notice.command === 'create' ? 'backup' : notice.command;
}

/** One plain line: `backup app/20261123T140509Z-1a2b3c succeeded on db1: 12.3 MiB in 4.2 s`. */
export function summaryLine(notice: RunNotice): string {
  const what = `${subject(notice)} ${notice.profile}${notice.id ? `/${notice.id}` : ''}`;
  const took = formatSeconds(notice.durationMs);
  const outcome = outcomeOf(notice);
  if (outcome === 'success') {
    const size = notice.bytes === undefined ? '' : `${formatSize(notice.bytes)} in `;
    return `${what} succeeded on ${notice.host}: ${size}${took}`;
  }
  if (outcome === 'busy') return `${what} skipped on ${notice.host}: the profile is busy (${notice.error ?? 'another run holds its lock'})`;
  return `${what} failed on ${notice.host} after ${took} (exit ${notice.exitCode}): ${notice.error ?? 'unknown error'}`;
}

/** Slack mrkdwn text; `&`, `<` and `>` escaped as Slack requires. */
export function slackText(notice: RunNotice): string {
  const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const outcome = outcomeOf(notice);
  const icon = outcome === 'success' ? ':white_check_mark:' : outcome === 'busy' ? ':hourglass:' : ':x:';
  const database = notice.database ? ` (database ${escape(notice.database)})` : '';
  return `${icon} backupctl: ${escape(summaryLine(notice))}${database}`;
}

function formatSeconds(ms: number): string {
  return ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

async function sendAll(requests: Request[], config: NotifyConfig, log: NotifyLog, options: SendOptions): Promise<void> {
  const timeoutMs = config.timeoutMs ?? DEFAULT_NOTIFY_TIMEOUT_MS;
  const retries = options.retries ?? config.retries ?? DEFAULT_NOTIFY_RETRIES;
  const backoff = options.backoffMs ?? ((attempt: number) => Math.min(500 * 2 ** attempt, 5000));
  await Promise.all(requests.map((request) => send(request, { timeoutMs, retries, backoff }, log)));
}

function retryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

async function send(
  request: Request,
  options: { timeoutMs: number; retries: number; backoff: (attempt: number) => number },
  log: NotifyLog,
): Promise<void> {
  const shown = redactUrl(request.url);
  let lastError = 'not sent';
  let attempts = 0;
  for (let attempt = 0; attempt <= options.retries; attempt++) {
    attempts += 1;
    try {
      const response = await fetch(request.url, {
        method: 'POST',
        headers: { 'content-type': request.contentType, 'user-agent': 'backupctl' },
        body: request.body,
        signal: AbortSignal.timeout(options.timeoutMs),
      });
      await response.arrayBuffer().catch(() => undefined);
      if (response.ok) {
        log.debug(`${request.kind} notification sent to ${shown} (HTTP ${response.status})`);
        return;
      }
      lastError = `HTTP ${response.status}`;
      if (!retryableStatus(response.status)) break;
    } catch (error) {
      lastError = describeError(error, options.timeoutMs, request.url);
    }
    if (attempt < options.retries) await new Promise((resolve) => setTimeout(resolve, options.backoff(attempt)));
  }
  const tries = attempts === 1 ? '' : ` after ${attempts} attempts`;
  log.warn(`${request.kind} notification to ${shown} failed${tries}: ${lastError} (the run's outcome is unchanged)`);
}

function describeError(error: unknown, timeoutMs: number, url: string): string {
  const name = (error as { name?: unknown } | null)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') return `no answer within ${timeoutMs} ms`;
  const cause = (error as { cause?: unknown } | null)?.cause;
  const code = (cause as { code?: unknown } | null)?.code;
  const message =
    typeof code === 'string'
      ? code
      : cause instanceof Error
        ? cause.message
        : error instanceof Error
          ? error.message
          : String(error);
  // Never echo a URL with its token, whatever the error text holds.
  return message.split(url).join(redactUrl(url));
}

/**
 * Whether a notification target can be reached, without notifying anyone (`check`): the
 * host is resolved and connected to (TCP, and TLS with certificate checks for https), and
 * nothing is sent: a test message would page people, and any request to a healthchecks
 * URL counts as a ping. Resolves with a description; rejects with why it cannot be reached.
 */
export async function probeUrl(url: string, timeoutMs: number): Promise<string> {
  const parsed = new URL(url);
  const secure = parsed.protocol === 'https:';
  const port = Number(parsed.port || (secure ? 443 : 80));
  const shown = redactUrl(url);
  const { connect: tcp } = await import('node:net');
  const { connect: tls } = await import('node:tls');
  await new Promise<void>((resolve, reject) => {
    const socket = secure ? tls({ host: parsed.hostname, port, servername: parsed.hostname }) : tcp({ host: parsed.hostname, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`${shown}: no connection within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      socket.end();
      resolve();
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new Error(`${shown}: ${error.code ?? error.message}`));
    });
  });
  return `${shown} reachable (${secure ? 'TLS' : 'TCP'} connection to ${parsed.hostname}:${port}; nothing sent)`;
}
