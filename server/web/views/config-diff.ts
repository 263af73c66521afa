import type { LineDiff } from '../../machine-config/line-diff.js';
import { html, type Html } from '../html.js';

/** Diff lines shown at most: a wholly different 1 MiB config would be a page of tens of thousands of rows. */
const SHOWN_LINES = 2000;

/** A line diff as diff -u shows it: a header per hunk, then its lines, each with its old and new line numbers. */
export function configDiff(d: LineDiff): Html {
  let budget = SHOWN_LINES;
  let hidden = 0;
  const rows: Html[] = [];
  for (const h of d.hunks) {
    if (budget <= 0) {
      hidden += h.lines.length;
      continue;
    }
    rows.push(html`<tr class="hunk"><td colspan="3" class="mono">@@ -${h.oldStart},${h.oldCount} +${h.newStart},${h.newCount} @@</td></tr>`);
    for (const l of h.lines) {
      if (budget-- <= 0) {
        hidden++;
        continue;
      }
      const sign = l.op === 'add' ? '+' : l.op === 'del' ? '-' : ' ';
      rows.push(html`<tr class="${l.op}"><td class="ln">${l.oldNo ?? ''}</td><td class="ln">${l.newNo ?? ''}</td><td class="mono">${sign}${l.text}</td></tr>`);
    }
  }
  return html`<div class="table-wrap"><table class="diff" data-testid="config-diff">
<thead><tr><th>Stored</th><th>Now</th><th>Line</th></tr></thead>
<tbody>${rows}</tbody></table></div>
${hidden > 0 ? html`<p class="muted">and ${hidden} more lines of the diff, not shown.</p>` : ''}
${d.approximate ? html`<p class="muted">The two differ in too many lines to pair them up: the differing part is shown removed, then added, whole.</p>` : ''}`;
}
