// A rules file written as a plain list of sites (one name or address a line, the way block lists
// are shared) is refused at its first line with the rule that line needs, not only the format.
// Before: `rules.txt:1: expected "<type>,<value>,<route>"` and the reader had to find the types.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRuleList } from './rules.js';

const refused = (text: string): string => {
  try {
    parseRuleList(text, 'sites.txt');
  } catch (err) {
    return (err as Error).message;
  }
  return 'taken';
};

test('a site alone on a line: the refusal shows its rule; other malformed lines as before', () => {
  assert.equal(
    refused('# blocked here\nexample.com\n'),
    'sites.txt:2: expected "<type>,<value>,<route>" (for this name and its subdomains: domain-suffix,example.com,proxy)',
  );
  assert.equal(
    refused('news.example.org,direct'),
    'sites.txt:1: expected "<type>,<value>,<route>" (for this name and its subdomains: domain-suffix,news.example.org,direct)',
  );
  assert.equal(
    refused('203.0.113.9'),
    'sites.txt:1: expected "<type>,<value>,<route>" (for this address: ip-cidr,203.0.113.9/32,proxy)',
  );
  assert.equal(
    refused('example.com,nowhere'),
    'sites.txt:1: expected "<type>,<value>,<route>" (for this name and its subdomains: domain-suffix,example.com,proxy)',
  );
  // Not a site: no hint.
  assert.equal(refused('!!!bad line'), 'sites.txt:1: expected "<type>,<value>,<route>"');
  assert.equal(refused('a,b,c,d,e'), 'sites.txt:1: expected "<type>,<value>,<route>"');
  // The hinted rules are rules.
  assert.equal(refused('domain-suffix,example.com,proxy\nip-cidr,203.0.113.9/32,proxy'), 'taken');
});
