/**
 * libpq's password file (~/.pgpass or PGPASSFILE): lines of
 * `hostname:port:database:username:password`, `*` matching anything, `\` escaping `:`
 * and `\`. The first matching line wins. libpq ignores the file when it is readable by
 * group or others; so do we.
 */
export interface PgpassQuery {
  host: string;
  port: number;
  database: string;
  user: string;
}

export function parsePgpassLine(line: string): string[] | null {
  if (line.trim() === '' || line.startsWith('#')) return null;
  const fields: string[] = [];
  let current = '';
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (ch === '\\' && i + 1 < line.length) {
      current += line[++i];
    } else if (ch === ':' && fields.length < 4) {
      fields.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  fields.push(current);
  return fields.length === 5 ? fields : null;
}

export function lookupPgpass(content: string, query: PgpassQuery): string | undefined {
  // A socket directory matches the entry "localhost", as in libpq.
  const host = query.host.startsWith('/') ? 'localhost' : query.host;
  const wanted = [host, String(query.port), query.database, query.user];
  for (const line of content.split(/\r?\n/)) {
    const fields = parsePgpassLine(line);
    if (!fields) continue;
    if (wanted.every((value, i) => fields[i] === '*' || fields[i] === value)) return fields[4];
  }
  return undefined;
}

function escapeField(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
}

/** One line that matches only this connection, for the temporary passfile children get. */
export function pgpassLine(query: PgpassQuery, password: string): string {
  const host = query.host.startsWith('/') ? 'localhost' : query.host;
  return `${[host, String(query.port), '*', query.user, password].map(escapeField).join(':')}\n`;
}
