import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
// @ts-expect-error - plain ESM build script without types
import { policyFor } from '../scripts/csp.mjs';

describe('policyFor', () => {
  it('allows exactly the inline scripts by hash', () => {
    const script = 'self.__next_f.push([1,"x"])';
    const hash = createHash('sha256').update(script).digest('base64');
    const policy: string = policyFor({ 'a.html': `<script src="/_next/a.js"></script><script>${script}</script>` });
    expect(policy).toContain(`script-src 'self' 'sha256-${hash}'`);
    expect(policy).not.toContain('unsafe-inline');
    expect(policy.match(/sha256-/g)).toHaveLength(1);
  });
  it('refuses pages with inline styles', () => {
    expect(() => policyFor({ 'b.html': '<div style="color:red"></div>' })).toThrow('b.html: inline style');
  });
});
