/**
 * A script pg_restore wrote (`--file=-`) split into its statements: at a `;` that ends a
 * line outside a quoted literal (pg_dump writes a statement a line; a literal, such as a
 * comment's text, may span lines). psql meta-commands (`\connect`, `\restrict`) and
 * comment lines outside literals are left out.
 */
export function scriptStatements(sql: string): string[] {
  const statements: string[] = [];
  let current = '';
  let quoted = false;
  for (const line of sql.split('\n')) {
    if (!quoted && current === '' && (line.startsWith('\\') || line.startsWith('--') || line.trim() === '')) continue;
    current += current === '' ? line : `\n${line}`;
    for (const char of line) if (char === "'") quoted = !quoted;
    if (!quoted && line.trimEnd().endsWith(';')) {
      statements.push(current.trim());
      current = '';
    }
  }
  if (current.trim() !== '') statements.push(current.trim());
  return statements;
}
