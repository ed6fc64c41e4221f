// Content-Security-Policy of the static export, computed at build time.
//
// Next's static HTML carries inline bootstrap scripts (`self.__next_f.push(...)`); the policy
// allows exactly those by their SHA-256 (CSP Level 2 hash sources, base64 of the UTF-8 text
// between <script> and </script>) and everything else only from 'self'. It fails the build
// when a page has an inline style attribute or <style> element, which the policy would block.
//
// Usage: node scripts/csp.mjs <export dir> [<output dir>]
// Writes <output dir>/csp.txt (the policy; the deploy merges it with the previous release's into the
// web root's csp.conf, deploys/operations/web.py); <output dir> defaults to the export's parent.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const INLINE_SCRIPT = /<script(?![^>]*\ssrc=)([^>]*)>([\s\S]*?)<\/script>/gi;

function htmlFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return htmlFiles(path);
    return name.endsWith('.html') ? [path] : [];
  });
}

/** The CSP of the HTML texts `pages` ({path: text}); throws naming a page with inline styles. */
export function policyFor(pages) {
  const hashes = new Set();
  for (const [path, text] of Object.entries(pages)) {
    if (/<style[\s>]/i.test(text) || /\sstyle="/i.test(text)) throw new Error(`${path}: inline style (blocked by the CSP)`);
    for (const match of text.matchAll(INLINE_SCRIPT)) {
      if (/type="application\/(ld\+)?json"/i.test(match[1])) continue;
      if (match[2].length === 0) continue;
      hashes.add(`'sha256-${createHash('sha256').update(match[2], 'utf8').digest('base64')}'`);
    }
  }
  return [
    "default-src 'self'",
    `script-src 'self' ${[...hashes].sort().join(' ')}`.trim(),
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  const exportDir = resolve(process.argv[2] ?? 'out');
  const outDir = resolve(process.argv[3] ?? dirname(exportDir));
  const pages = Object.fromEntries(htmlFiles(exportDir).map((path) => [path, readFileSync(path, 'utf8')]));
  if (Object.keys(pages).length === 0) throw new Error(`${exportDir}: no HTML pages`);
  const policy = policyFor(pages);
  writeFileSync(join(outDir, 'csp.txt'), policy + '\n');
  console.log(`csp: ${Object.keys(pages).length} pages, ${policy.split("'sha256-").length - 1} inline script hashes`);
}
