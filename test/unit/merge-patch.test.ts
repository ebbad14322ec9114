// JSON merge patches (RFC 7386) as status writes use them: the patch between two objects,
// applied the way the API server applies it, gives back the second object.
import { describe, expect, it } from 'vitest';
import { applyMergePatch, mergePatchFor, sameJson, type Json } from '../../src/kube/merge-patch.js';

type Obj = { [key: string]: Json };

describe('mergePatchFor', () => {
  const cases: Array<[string, Obj, Obj, Obj | undefined]> = [
    ['equal objects need no patch', { a: 1, b: { c: [1, 2] } }, { b: { c: [1, 2] }, a: 1 }, undefined],
    ['a changed scalar', { state: 'progressing', n: 1 }, { state: 'ready', n: 1 }, { state: 'ready' }],
    [
      'a removed key becomes null',
      { lastError: 'boom', state: 'failed' },
      { state: 'ready' },
      { lastError: null, state: 'ready' },
    ],
    ['an added key', { a: 1 }, { a: 1, b: 'x' }, { b: 'x' }],
    [
      'nested objects are patched key by key',
      { drift: { count: 2, fields: ['a'], corrected: false } },
      { drift: { count: 2, fields: ['a'], corrected: true } },
      { drift: { corrected: true } },
    ],
    [
      'lists are replaced whole',
      { conditions: [{ type: 'Ready', status: 'False' }] },
      { conditions: [{ type: 'Ready', status: 'True' }] },
      { conditions: [{ type: 'Ready', status: 'True' }] },
    ],
    ['an object replacing a scalar', { drift: 'none' }, { drift: { count: 0 } }, { drift: { count: 0 } }],
  ];

  it.each(cases)('%s', (_name, before, after, expected) => {
    const patch = mergePatchFor(before, after);
    expect(patch).toEqual(expected);
    expect(applyMergePatch(before, patch ?? {})).toEqual(after);
  });
});

describe('sameJson', () => {
  it('ignores key order and undefined members, not values', () => {
    expect(sameJson({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1, d: undefined })).toBe(true);
    expect(sameJson({ a: [1, 2] }, { a: [2, 1] })).toBe(false);
    expect(sameJson({ a: 1 }, { a: '1' })).toBe(false);
    expect(sameJson({ a: {} }, { a: [] })).toBe(false);
    expect(sameJson(null, {})).toBe(false);
  });
});
