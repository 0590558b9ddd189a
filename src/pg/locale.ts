/**
 * A database's locale, as pg_database records it, and how CREATE DATABASE is given it: the
 * throwaway database of verify and the staging database of restore are created with the
 * source's locale, so that an archive of a LATIN1 database restores at all (its encoding
 * does not fit the server's default UTF-8 locale) and text sorts as it did.
 */
export interface DatabaseLocale {
  provider: 'libc' | 'icu' | 'builtin';
  /** LC_COLLATE and LC_CTYPE (also recorded for ICU and builtin databases). */
  collate: string;
  ctype: string;
  /** The ICU locale (provider icu) or the builtin one (provider builtin); null for libc. */
  locale: string | null;
  /** ICU tailoring rules (PostgreSQL 16+). */
  icuRules: string | null;
}

const PROVIDERS: Record<string, DatabaseLocale['provider']> = { c: 'libc', i: 'icu', b: 'builtin' };

/** A pg_database row's locale, whatever the server's version (see DatabaseLocale). */
export function localeOf(row: Record<string, unknown>): DatabaseLocale {
  const text = (value: unknown): string | null => (typeof value === 'string' && value !== '' ? value : null);
  const provider = PROVIDERS[text(row.datlocprovider) ?? 'c'] ?? 'libc';
  return {
    provider,
    collate: text(row.datcollate) ?? 'C',
    ctype: text(row.datctype) ?? 'C',
    locale: provider === 'libc' ? null : text(row.datlocale) ?? text(row.daticulocale),
    icuRules: text(row.daticurules),
  };
}

/**
 * The CREATE DATABASE options for `locale` on a server of version `serverVersionNum`: the
 * provider and its locale need PostgreSQL 15+ (builtin 17+, ICU rules 16+); an older server
 * gets the LC_COLLATE/LC_CTYPE the source recorded for them too.
 */
export function localeClause(locale: DatabaseLocale, serverVersionNum: number, literal: (text: string) => string): string {
  let sql = ` LC_COLLATE ${literal(locale.collate)} LC_CTYPE ${literal(locale.ctype)}`;
  if (serverVersionNum >= 150000) {
    if (locale.provider === 'icu' && locale.locale !== null) {
      sql += ` LOCALE_PROVIDER icu ICU_LOCALE ${literal(locale.locale)}`;
      if (locale.icuRules !== null && serverVersionNum >= 160000) sql += ` ICU_RULES ${literal(locale.icuRules)}`;
    } else if (locale.provider === 'builtin' && locale.locale !== null && serverVersionNum >= 170000) {
      sql += ` LOCALE_PROVIDER builtin BUILTIN_LOCALE ${literal(locale.locale)}`;
    } else {
      sql += ' LOCALE_PROVIDER libc';
    }
  }
  return sql;
}

/** Sorting by the C locale fits every encoding: what a database is created with when the source's locale cannot be had. */
export const C_LOCALE: DatabaseLocale = { provider: 'libc', collate: 'C', ctype: 'C', locale: null, icuRules: null };

/** `C.UTF-8`, `icu sv-SE (libc C.UTF-8)`, or with LC_CTYPE when it differs from LC_COLLATE. */
export function describeLocale(locale: DatabaseLocale): string {
  const libc = locale.collate === locale.ctype ? locale.collate : `collate ${locale.collate}, ctype ${locale.ctype}`;
  if (locale.provider === 'libc' || locale.locale === null) return libc;
  return `${locale.provider} ${locale.locale}${locale.icuRules ? ' (with rules)' : ''} (libc ${libc})`;
}
