/**
 * Belt and braces for every message that leaves the process (stderr, --json, the run log,
 * a sidecar's verification record): a secret that slipped into one is masked. Credentials
 * are never put into messages on purpose; this catches what a child or a driver echoed.
 * - a connection string's password: `postgres://user:***@host`;
 * - `password=...` / `pgpassword=...` (a conninfo, an environment dump);
 * - SQL's `password '...'` (CREATE USER MAPPING / ROLE ... PASSWORD, in pg_restore's
 *   "Command was:" line).
 */
export function redactSecrets(text: string): string {
  return text
    .replace(/([a-z][a-z0-9+.-]*:\/\/[^:@/\s]*:)[^@\s]*@/gi, '$1***@')
    .replace(/\b(password|pgpassword)=("[^"]*"|'[^']*'|\S+)/gi, '$1=***')
    .replace(/\b(password\s+)'(?:[^']|'')*'/gi, "$1'***'");
}
