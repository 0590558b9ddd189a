/**
 * A script pg_restore wrote (`--file=-`) split into its statements: at a `;` that ends a
 * line outside a string literal and a quoted identifier (pg_dump writes a statement a
 * line; a literal, such as a comment's text, may span lines; a quoted name may hold a `'`).
 * psql meta-commands (`\connect`, `\restrict`) and comment lines between statements are
 * left out. What a caller runs it still checks statement by statement.
 */
export function scriptStatements(sql: string): string[] {
  const statements: string[] = [];
  let current = '';
  /** Inside a '...' literal or a "..." identifier (the quote character), else null. */
  let open: "'" | '"' | null = null;
  for (const line of sql.split('\n')) {
    if (open === null && current === '' && (line.startsWith('\\') || line.startsWith('--') || line.trim() === '')) continue;
    current += current === '' ? line : `\n${line}`;
    for (const char of line) {
      if (open === null && (char === "'" || char === '"')) open = char;
      else if (char === open) open = null; // a doubled quote closes and opens again
    }
    if (open === null && line.trimEnd().endsWith(';')) {
      statements.push(current.trim());
      current = '';
    }
  }
  if (current.trim() !== '') statements.push(current.trim());
  return statements;
}
