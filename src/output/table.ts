/**
 * Column layout for terminal text: tables and aligned key/value blocks.
 * Widths are measured as a terminal displays them: escape codes take no room, East
 * Asian wide characters and emoji take two cells, combining marks none.
 */
import type { Style } from './style.js';

// CSI sequences (colors, cursor moves) and OSC sequences (hyperlinks, titles).
// eslint-disable-next-line no-control-regex
const ANSI_PATTERN = /\u001b\[[0-9;?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)/g;

export function stripAnsi(text: string): string {
  return text.replace(ANSI_PATTERN, '');
}

/** Code point ranges that East Asian Width classifies as Wide or Fullwidth (the common blocks). */
const WIDE_RANGES: ReadonlyArray<readonly [number, number]> = [
  [0x1100, 0x115f], // Hangul Jamo
  [0x2e80, 0x303e], // CJK radicals, Kangxi, CJK symbols and punctuation
  [0x3041, 0x33ff], // Hiragana, Katakana, Bopomofo, compatibility
  [0x3400, 0x4dbf], // CJK extension A
  [0x4e00, 0x9fff], // CJK unified ideographs
  [0xa000, 0xa4cf], // Yi
  [0xa960, 0xa97f], // Hangul Jamo extended A
  [0xac00, 0xd7a3], // Hangul syllables
  [0xf900, 0xfaff], // CJK compatibility ideographs
  [0xfe10, 0xfe19], // vertical forms
  [0xfe30, 0xfe6f], // CJK compatibility forms, small forms
  [0xff00, 0xff60], // fullwidth forms
  [0xffe0, 0xffe6],
  [0x1f300, 0x1f64f], // pictographs, emoticons
  [0x1f900, 0x1f9ff], // supplemental symbols and pictographs
  [0x20000, 0x2fffd], // CJK extensions B..F
  [0x30000, 0x3fffd],
];

const EMOJI_PRESENTATION = /\p{Emoji_Presentation}/u;
const ZERO_WIDTH = /^[\p{Mn}\p{Me}\p{Cf}\p{Cc}]$/u;
// Created on first use: ICU's segmenter costs ~10 ms to set up, and most runs print no table.
let segmenter: Intl.Segmenter | null = null;

function isWide(codePoint: number): boolean {
  for (const [low, high] of WIDE_RANGES) {
    if (codePoint < low) return false;
    if (codePoint <= high) return true;
  }
  return false;
}

function graphemeWidth(grapheme: string): number {
  const first = grapheme.codePointAt(0);
  if (first === undefined) return 0;
  // An emoji, or a text symbol turned into one by VS16 (U+FE0F), or a flag.
  if (EMOJI_PRESENTATION.test(grapheme) || grapheme.includes('\uFE0F')) return 2;
  if (ZERO_WIDTH.test(String.fromCodePoint(first))) return 0;
  return isWide(first) ? 2 : 1;
}

/**
 * Above this length, text is measured code point by code point: ICU's grapheme segmenter
 * slows down more than linearly on long strings (40 s for 200,000 characters here), and a
 * hostile sidecar must not stall `show`. Only the width of emoji joined by ZWJ differs.
 */
const SEGMENT_MAX_LENGTH = 256;

/** Terminal cells `text` occupies: ANSI codes stripped, wide characters and emoji count 2. */
export function displayWidth(text: string): number {
  const plain = stripAnsi(text);
  // Fast path: printable ASCII.
  if (/^[\u0020-\u007e]*$/.test(plain)) return plain.length;
  let width = 0;
  if (plain.length > SEGMENT_MAX_LENGTH) {
    for (const char of plain) width += char === '\u200d' ? 0 : graphemeWidth(char);
    return width;
  }
  segmenter ??= new Intl.Segmenter('en', { granularity: 'grapheme' });
  for (const { segment } of segmenter.segment(plain)) width += graphemeWidth(segment);
  return width;
}

export type Align = 'left' | 'right';

export interface Column {
  header: string;
  align?: Align;
}

function pad(text: string, width: number, align: Align): string {
  const fill = ' '.repeat(Math.max(0, width - displayWidth(text)));
  return align === 'right' ? fill + text : text + fill;
}

/**
 * `text` without its trailing spaces, in linear time: `/ +$/` backtracks quadratically on
 * a long run of spaces followed by anything else (a hostile sidecar's 30k-space tag).
 */
export function trimTrailingSpaces(text: string): string {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 32) end -= 1;
  return end === text.length ? text : text.slice(0, end);
}

function joinLine(cells: string[]): string {
  return trimTrailingSpaces(cells.join('  '));
}

/**
 * A table: each column as wide as its widest cell (header included), two spaces
 * between columns, bold header, no trailing spaces, a newline after every line.
 * No rows: '' (the caller prints its own "nothing here" line).
 */
export function renderTable(columns: Column[], rows: string[][], style: Style): string {
  if (rows.length === 0) return '';
  // Each cell is measured once (a list of 10,000 backups has 80,000 of them), into one flat
  // array: row r's cell i at r * columns.length + i (not an array per row).
  const measured: number[] = [];
  for (const row of rows) for (let i = 0; i < columns.length; i++) measured.push(displayWidth(row[i] ?? ''));
  const widths = columns.map((column, i) => {
    let width = displayWidth(column.header);
    for (let at = i; at < measured.length; at += columns.length) width = Math.max(width, measured[at] ?? 0);
    return width;
  });
  const line = (cells: readonly string[], widthOf: (i: number, text: string) => number, decorate: (text: string) => string = (text) => text): string =>
    joinLine(
      columns.map((column, i) => {
        const align = column.align ?? 'left';
        const raw = cells[i] ?? '';
        const text = raw === '' ? raw : decorate(raw);
        // The last left-aligned column needs no padding: it would only be trailing spaces.
        if (i === columns.length - 1 && align === 'left') return text;
        const fill = ' '.repeat(Math.max(0, (widths[i] ?? 0) - widthOf(i, text)));
        return align === 'right' ? fill + text : text + fill;
      }),
    );
  const out = [line(columns.map((column) => column.header), (_, text) => displayWidth(text), (text) => style.bold(text))];
  for (const [index, row] of rows.entries()) out.push(line(row, (i) => measured[index * columns.length + i] ?? 0));
  return `${out.join('\n')}\n`;
}

/**
 * Aligned `key  value` lines, indented: the keys padded to the widest (dimmed when
 * colored), values as given. Ends with a newline; '' for no pairs.
 */
export function renderKeyValues(pairs: ReadonlyArray<readonly [string, string]>, style: Style, indent = 2): string {
  if (pairs.length === 0) return '';
  const width = Math.max(...pairs.map(([key]) => displayWidth(key)));
  const prefix = ' '.repeat(indent);
  return pairs
    .map(([key, value]) => trimTrailingSpaces(`${prefix}${style.dim(pad(key, width, 'left'))}  ${value}`))
    .join('\n')
    .concat('\n');
}
