/**
 * The docs hold together: every relative link in README.md and docs/*.md names a file of the repository, every
 * `#anchor` names a heading of its target (GitHub's slugs), and neither the docs nor code comments point at files
 * the repository does not contain. Docs moved out of README.md once already and kept links to its old sections; this
 * catches the next move before a reader does.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The docs whose links are checked: README.md and every page of docs/. */
function docFiles(): string[] {
  const docs = readdirSync(join(ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => join(ROOT, 'docs', name));
  return [join(ROOT, 'README.md'), ...docs];
}

/** The lines of a Markdown text, those of fenced code blocks (``` or ~~~) blanked so line numbers stay. */
function proseLines(text: string): string[] {
  let fence: string | undefined;
  return text.split('\n').map((line) => {
    const opening = /^ {0,3}(`{3,}|~{3,})/.exec(line)?.[1];
    if (fence === undefined) {
      if (opening === undefined) return line;
      fence = opening;
      return '';
    }
    // A closing fence: the same character, at least as long, nothing after it.
    if (
      opening !== undefined &&
      opening[0] === fence[0] &&
      opening.length >= fence.length &&
      /^ {0,3}[`~]+\s*$/.test(line)
    )
      fence = undefined;
    return '';
  });
}

/** A heading's text as GitHub renders it (code, links and emphasis reduced to their text). */
function headingText(markdown: string): string {
  return markdown
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/`+([^`]*)`+/g, '$1')
    .replace(/<[^>]+>/g, '')
    .replace(/\*\*|__|\*/g, '')
    .trim();
}

/** GitHub's heading slug (github-slugger): lower case, punctuation and symbols dropped, each space a hyphen. */
function githubSlug(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** Every anchor a Markdown text defines: heading slugs (repeats get -1, -2, …) and explicit `<a id|name>`. */
function anchorsOf(text: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  const add = (slug: string) => {
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    anchors.add(count === 0 ? slug : `${slug}-${count}`);
  };
  const lines = proseLines(text);
  lines.forEach((line, i) => {
    const atx = /^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/.exec(line);
    if (atx) add(githubSlug(headingText(atx[1] ?? '')));
    // Setext: a paragraph line underlined with = or - (a table's delimiter row has pipes, so it never matches).
    const previous = lines[i - 1] ?? '';
    if (/^ {0,3}(=+|-+)\s*$/.test(line) && previous.trim() !== '' && !/^ {0,3}([#>*+-]|\d+\.)/.test(previous)) {
      add(githubSlug(headingText(previous)));
    }
    for (const m of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(m[1] ?? '');
  });
  return anchors;
}

interface Link {
  line: number;
  target: string;
}

/** Inline links and images `[text](target)` and reference definitions `[ref]: target`, outside code. */
function linksOf(text: string): Link[] {
  const links: Link[] = [];
  proseLines(text).forEach((raw, i) => {
    const line = raw.replace(/`+[^`]*`+/g, (code) => ' '.repeat(code.length)); // inline code is not a link
    for (const m of line.matchAll(/!?\[(?:[^\]\\]|\\.)*\]\(\s*(<[^>]*>|[^\s)]+)(?:\s+"[^"]*")?\s*\)/g)) {
      links.push({ line: i + 1, target: (m[1] ?? '').replace(/^<|>$/g, '') });
    }
    const definition = /^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)/.exec(line);
    if (definition) links.push({ line: i + 1, target: (definition[1] ?? '').replace(/^<|>$/g, '') });
  });
  return links;
}

/** What is wrong with the relative links of one doc, one line per broken link. */
function brokenLinks(file: string): string[] {
  const problems: string[] = [];
  const where = relative(ROOT, file);
  for (const { line, target } of linksOf(readFileSync(file, 'utf8'))) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:: not ours to check
    const [pathPart = '', anchor] = target.split('#', 2);
    const path = decodeURIComponent(pathPart);
    const resolved = path === '' ? file : resolve(dirname(file), path);
    const at = `${where}:${line}: ${target}`;
    if (resolved !== ROOT.replace(/[/\\]$/, '') && !resolved.startsWith(ROOT)) {
      problems.push(`${at}: points outside the repository`);
      continue;
    }
    if (!existsSync(resolved)) {
      problems.push(`${at}: ${relative(ROOT, resolved)} does not exist`);
      continue;
    }
    if (anchor === undefined) continue;
    if (statSync(resolved).isDirectory() || extname(resolved) !== '.md') {
      problems.push(`${at}: an anchor into a file that is not Markdown`);
    } else if (!anchorsOf(readFileSync(resolved, 'utf8')).has(decodeURIComponent(anchor))) {
      problems.push(`${at}: no heading of ${relative(ROOT, resolved)} has the slug "${anchor}"`);
    }
  }
  return problems;
}

/** The text of every comment of a TypeScript or JavaScript source (strings and import paths are not comments). */
function commentsOf(fileName: string, text: string): string[] {
  const kind = /\.(c|m)?js$/.test(fileName) ? ts.ScriptKind.JS : ts.ScriptKind.TS;
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, kind);
  const comments = new Map<number, string>();
  // In TypeScript every comment is leading trivia of the token after it: visiting every token finds them all.
  const visit = (node: ts.Node) => {
    if (node.kind >= ts.SyntaxKind.FirstJSDocNode && node.kind <= ts.SyntaxKind.LastJSDocNode) return;
    const children = node.getChildren(source);
    if (children.length > 0) {
      for (const child of children) visit(child);
      return;
    }
    // Leading ranges start at the next line; a comment after code on the line before is a trailing one.
    const ranges = [
      ...(ts.getLeadingCommentRanges(text, node.pos) ?? []),
      ...(ts.getTrailingCommentRanges(text, node.end) ?? []),
    ];
    for (const range of ranges) comments.set(range.pos, text.slice(range.pos, range.end));
  };
  visit(source);
  return [...comments.entries()].sort(([a], [b]) => a - b).map(([, comment]) => comment);
}

/** Files under `dir`, recursively, without installed packages. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : filesUnder(path);
    return entry.isFile() ? [path] : [];
  });
}

/** Names of files outside this repository that docs and comments once pointed at (built, so this file is clean). */
const FOREIGN = [['ARCHITECTURE', 'md'].join('.'), ['..', 'shared'].join('/'), ['shared', 'reference'].join('/')];

const CODE = /\.(ts|mts|cts|js|mjs|cjs)$/;

describe('docs', () => {
  it('computes GitHub heading slugs', () => {
    // Arrange: headings of the kinds the docs use (code, punctuation, numbers, a repeated heading).
    const text = [
      '# cdc-sync',
      '## Compatibility gate: `npm run schemas -- check`',
      '### 1. Tools and credentials',
      '## What CloudFormation cannot do, and how it is handled',
      '## Tests and CI',
      '```bash',
      '# a shell comment, not a heading',
      '```',
      '## Tests and CI',
      'Setext heading',
      '---',
      '## `DEDUPE_TABLE_NAME` and **bold** snake_case',
    ].join('\n');

    // Act
    const anchors = anchorsOf(text);

    // Assert
    expect([...anchors]).toEqual([
      'cdc-sync',
      'compatibility-gate-npm-run-schemas----check',
      '1-tools-and-credentials',
      'what-cloudformation-cannot-do-and-how-it-is-handled',
      'tests-and-ci',
      'tests-and-ci-1',
      'setext-heading',
      'dedupe_table_name-and-bold-snake_case',
    ]);
  });

  it('finds links outside code only', () => {
    // Arrange
    const text = [
      'See [local](docs/local.md#flags) and ![diagram](img.png "title").',
      '`[not](a-link.md)` and [ref]: docs/x.md',
      '[def]: docs/configuration.md',
      '```',
      '[in](code.md)',
      '```',
    ].join('\n');

    // Act
    const targets = linksOf(text).map((l) => `${l.line}:${l.target}`);

    // Assert
    expect(targets).toEqual(['1:docs/local.md#flags', '1:img.png', '3:docs/configuration.md']);
  });

  it('reads comments, not strings, from code', () => {
    // Arrange: an import path and a regex with slashes are code; the two comments are comments.
    const text = [
      "import { x } from '../shared/config';",
      '/** See docs/local.md. */',
      'const re = /^a:\\/\\/b/; // trailing note',
      ['const t = `$', '{re}//not a comment`;'].join(''),
    ].join('\n');

    // Act
    const comments = commentsOf('example.ts', text);

    // Assert
    expect(comments).toEqual(['/** See docs/local.md. */', '// trailing note']);
  });

  it('README.md and docs/*.md: every relative link and anchor resolves', () => {
    // Arrange
    const files = docFiles();

    // Act
    const problems = files.flatMap(brokenLinks);

    // Assert: the check saw the README's links into docs/ (an empty parse must not pass), and none is broken.
    expect(linksOf(readFileSync(join(ROOT, 'README.md'), 'utf8')).map((l) => l.target)).toContain('docs/local.md');
    expect(problems).toEqual([]);
  });

  it('no doc or code comment points at files outside the repository', () => {
    // Arrange: docs as a whole; in code, only comments (imports of a folder named shared are fine).
    const docs = docFiles();
    const sources = ['functions', 'lib', 'tools', 'test'].flatMap((dir) => filesUnder(join(ROOT, dir)));

    // Act
    const mentions = [...docs, ...sources].flatMap((file) => {
      const text = readFileSync(file, 'utf8');
      const scanned = CODE.test(file) ? commentsOf(file, text) : [text];
      return FOREIGN.filter((name) => scanned.some((part) => part.includes(name))).map(
        (name) => `${relative(ROOT, file).split(sep).join('/')}: ${name}`,
      );
    });

    // Assert
    expect(sources.length).toBeGreaterThan(100);
    expect(mentions).toEqual([]);
  });

  it('CI runs exactly the test command README.md gives', () => {
    // Arrange
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const ci = readFileSync(join(ROOT, '.ci/run'), 'utf8');

    // Act: the commands on their own lines (a trailing comment aside).
    const commands = (text: string) => text.split('\n').map((line) => line.replace(/\s+#.*$/, '').trim());

    // Assert
    expect(commands(readme)).toContain('npm test');
    expect(commands(ci)).toContain('npm test');
  });

  it('README.md and the benchmarks page carry no dated runs', () => {
    // Arrange: history belongs in git log; figures in these pages are the current ones.
    const pages = ['README.md', 'docs/benchmarks.md', 'docs/local.md'];

    // Act
    const dated = pages.flatMap((page) =>
      [...readFileSync(join(ROOT, page), 'utf8').matchAll(/\b20\d\d-[01]\d-[0-3]\d\b/g)].map((m) => `${page}: ${m[0]}`),
    );

    // Assert
    expect(dated).toEqual([]);
  });
});
