/**
 * Terminal display width of text, so that table columns line up with CJK,
 * emoji and combining accents in the data. Hand-written (about what the
 * `string-width` package does) to keep the CLI's dependencies to commander:
 * graphemes via Intl.Segmenter, East Asian Wide/Fullwidth ranges and emoji
 * presentation are two columns, combining and zero-width characters none.
 */

// Made on first use: building a Segmenter costs ~20 ms, which `ccp --version` should not pay.
let segmenterInstance: Intl.Segmenter | undefined;
const segmenter = () => (segmenterInstance ??= new Intl.Segmenter(undefined, { granularity: "grapheme" }));

// Combining marks (variation selectors included), and format characters such as ZWJ and ZWSP.
const ZERO_WIDTH = /^[\p{Mn}\p{Me}\p{Cf}]$/u;
const EMOJI = /\p{Emoji_Presentation}|\uFE0F/u;
// prettier-ignore
const WIDE: readonly (readonly [number, number])[] = [
  [0x1100, 0x115f], [0x2e80, 0x303e], [0x3041, 0x33ff], [0x3400, 0x4dbf], [0x4e00, 0x9fff], [0xa000, 0xa4cf],
  [0xa960, 0xa97f], [0xac00, 0xd7a3], [0xf900, 0xfaff], [0xfe10, 0xfe19], [0xfe30, 0xfe6f], [0xff00, 0xff60],
  [0xffe0, 0xffe6], [0x16fe0, 0x16fe4], [0x17000, 0x18aff], [0x1b000, 0x1b2ff], [0x20000, 0x2fffd], [0x30000, 0x3fffd],
];

function isWide(cp: number): boolean {
  for (const [lo, hi] of WIDE) {
    if (cp < lo) return false;
    if (cp <= hi) return true;
  }
  return false;
}

function graphemeWidth(g: string): number {
  if (EMOJI.test(g)) return 2;
  const first = g.codePointAt(0) as number;
  if (ZERO_WIDTH.test(String.fromCodePoint(first))) return 0;
  return isWide(first) ? 2 : 1;
}

/** Columns `text` takes on a terminal (no newlines or control characters expected). */
export function displayWidth(text: string): number {
  // Fast path: printable ASCII is one column per character.
  if (/^[\x20-\x7e]*$/.test(text)) return text.length;
  let width = 0;
  for (const { segment } of segmenter().segment(text)) width += graphemeWidth(segment);
  return width;
}

/** Graphemes of `text` with their widths, for cutting text to a width. */
export function graphemes(text: string): { text: string; width: number }[] {
  return Array.from(segmenter().segment(text), ({ segment }) => ({ text: segment, width: graphemeWidth(segment) }));
}
