/**
 * The self-contained HTML report: the summary line, a bar chart by category and mechanism, and a
 * per-URL table sortable by any column. No external resources (a CSP forbids them): it can be
 * opened offline and shared as one file.
 */
import { MECHANISMS } from './classify.js';
import { ooniTime } from './ooni.js';
import type { ProbeResult } from './run.js';
import { summarize, verdictName } from './summary.js';

const COLOURS: Record<string, string> = {
  accessible: '#4caf50',
  dns: '#e53935',
  tcp_ip: '#8e24aa',
  tls: '#fb8c00',
  'http-failure': '#1e88e5',
  'http-diff': '#00897b',
  null: '#9e9e9e',
};
const KINDS = ['accessible', ...MECHANISMS, 'null'];

const esc = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function detail(r: ProbeResult): string {
  const k = r.keys;
  if (k.blocking === 'dns')
    return `answers ${k.x_unexpected_answers.join(', ')} (control: ${'dns' in k.control ? k.control.dns.addrs.join(', ') : '-'})`;
  if (k.blocking === null) return `control: ${k.control_failure ?? ''}`;
  const tls = k.tls_handshakes.find((t) => t.failure)?.failure;
  if (k.blocking === 'tcp_ip')
    return k.x_null_routed
      ? 'connects, then nothing answers (null route)'
      : (k.tcp_connect[0]?.status.failure ?? '');
  if (k.blocking === 'tls') return `handshake: ${tls ?? k.http_experiment_failure ?? ''}`;
  if (k.blocking === 'http-failure') return k.http_experiment_failure ?? '';
  if (k.blocking === 'http-diff')
    return `status ${k.requests.at(-1)?.response?.code ?? '?'}, body ${Math.round((k.body_proportion ?? 0) * 100)}% of the control's`;
  return '';
}

export function renderHtml(results: readonly ProbeResult[], start: Date): string {
  const summary = summarize(results);
  const cats = [...new Set(results.map((r) => r.category))].sort();
  const bars = cats
    .map((c) => {
      const rs = results.filter((r) => r.category === c);
      const segs = KINDS.map((kind) => {
        const n = rs.filter((r) => verdictName(r.keys.blocking) === kind).length;
        return n
          ? `<span class="seg" style="width:${(100 * n) / rs.length}%;background:${COLOURS[kind]}" title="${esc(kind)}: ${n}">${n}</span>`
          : '';
      }).join('');
      return `<div class="row"><span class="cat">${esc(c)}</span><span class="bar">${segs}</span></div>`;
    })
    .join('\n');
  const legend = KINDS.map((k) => `<span><i style="background:${COLOURS[k]}"></i>${esc(k)}</span>`).join(' ');
  const rows = results
    .map((r) => {
      const v = verdictName(r.keys.blocking);
      return `<tr><td>${esc(r.input)}</td><td>${esc(r.category)}</td><td><b style="color:${COLOURS[v]}">${esc(v)}</b></td><td>${esc(detail(r))}</td><td>${r.runtime.toFixed(2)}</td></tr>`;
    })
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>ladder probe report ${esc(ooniTime(start))} UTC</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
pre{background:#f5f5f5;padding:1em;overflow:auto}
.row{display:flex;align-items:center;margin:2px 0}.cat{width:8em}.bar{display:flex;flex:1;max-width:40em;height:1.4em;background:#eee}
.seg{color:#fff;font-size:12px;text-align:center;overflow:hidden}
.legend span{margin-right:1em}.legend i{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:middle}
table{border-collapse:collapse;margin-top:1em}td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left}
th{cursor:pointer;background:#fafafa}th:hover{background:#eee}td:first-child{word-break:break-all;max-width:40em}
.note{color:#555;max-width:60em}
</style></head><body>
<h1>ladder probe report</h1>
<p>Started ${esc(ooniTime(start))} UTC. Method: docs/probe.md (OONI web_connectivity, with your own server as the control).</p>
<pre id="summary">${esc(summary)}</pre>
<h2>By category and mechanism</h2>
<div class="legend">${legend}</div>
<div id="chart">${bars}</div>
<h2>Per URL</h2>
<table id="urls"><thead><tr><th>URL</th><th>category</th><th>verdict</th><th>how</th><th>seconds</th></tr></thead>
<tbody>
${rows}
</tbody></table>
<p class="note">This report reveals the URLs measured, when, and how each failed on this network; it holds no address, ASN or key of yours.</p>
<script>
window.addEventListener('error', function (e) { document.body.setAttribute('data-error', String(e.message)); });
(function () {
  var table = document.getElementById('urls');
  var heads = table.querySelectorAll('th');
  heads.forEach(function (th, col) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0];
      var asc = th.getAttribute('data-dir') !== 'asc';
      heads.forEach(function (h) { h.removeAttribute('data-dir'); });
      th.setAttribute('data-dir', asc ? 'asc' : 'desc');
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].textContent, y = b.cells[col].textContent;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = !isNaN(nx) && !isNaN(ny) ? nx - ny : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  document.body.setAttribute('data-ready', String(table.tBodies[0].rows.length));
})();
</script>
</body></html>
`;
}
