// The page's one stylesheet, served at /static/app.css (the CSP allows no inline styles).
export const APP_CSS = `
:root{--fg:#1d2433;--muted:#5c667a;--line:#dde2ea;--bg:#f5f7fa;--card:#fff;--accent:#2f5bea;--ok:#1f7a3d;--bad:#b42318;--warn:#b54708}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
a{color:var(--accent)}
.dev-banner{background:#d9480f;color:#fff;text-align:center;font-weight:700;padding:.5rem 1rem;letter-spacing:.02em}
header.top{display:flex;align-items:center;justify-content:space-between;gap:1rem;flex-wrap:wrap;background:#111827;color:#fff;padding:.75rem 1.25rem}
header.top a{color:#fff;text-decoration:none}
.brand{font-weight:700;font-size:1.1rem}.brand span{color:#93b4ff}
nav.main{display:flex;gap:1rem;align-items:center;flex-wrap:wrap}
nav.main form{margin:0}
.who{color:#cbd5e1;font-size:.9rem}
main{max-width:72rem;margin:0 auto;padding:1.25rem}
h1{font-size:1.5rem;margin:.5rem 0 1rem}
h2{font-size:1.15rem;margin:1.5rem 0 .5rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:1.25rem;margin-bottom:1rem}
.narrow{max-width:36rem;margin-left:auto;margin-right:auto}
table{width:100%;border-collapse:collapse;background:var(--card);font-size:.92rem}
th,td{text-align:left;padding:.5rem .6rem;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600;font-size:.8rem;text-transform:uppercase;letter-spacing:.03em}
.table-wrap{overflow-x:auto;border:1px solid var(--line);border-radius:10px}
.mono,code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.88em}
.badge{display:inline-block;border-radius:999px;padding:.05rem .6rem;font-size:.8rem;font-weight:600;background:#eef2ff;color:#3730a3}
.badge.pending{background:#fff7e6;color:var(--warn)}.badge.approved{background:#e7f6ec;color:var(--ok)}
.badge.denied,.badge.revoked{background:#fdecea;color:var(--bad)}
.button.secondary{background:#e5e9f0;color:var(--fg)}
pre.config{background:#0f172a;color:#e2e8f0;padding:1rem;border-radius:10px;overflow:auto;max-height:40rem;font-size:.82rem}
table.diff td{padding:0 .5rem;border:0;white-space:pre-wrap;word-break:break-all}
table.diff td.ln{color:var(--muted);text-align:right;width:3.5rem;font-size:.8rem;user-select:none}
table.diff tr.add{background:#e7f6ec}table.diff tr.del{background:#fdecea}table.diff tr.hunk td{background:#eef2ff;color:#3730a3}
.filter-row{display:grid;grid-template-columns:repeat(auto-fit,minmax(12rem,1fr));gap:0 .75rem}.filter-row input,.filter-row select{font-weight:400}
td.detail{max-width:28rem;word-break:break-all}
.usercode{font-family:ui-monospace,monospace;font-size:2rem;font-weight:700;letter-spacing:.15em;text-align:center;padding:.5rem;border:2px dashed var(--accent);border-radius:10px;margin:.5rem 0 1rem}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.35rem 1rem;margin:0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;word-break:break-all}
label{display:block;font-weight:600;margin:.75rem 0 .25rem}
input[type=text],select,textarea{width:100%;padding:.6rem;border:1px solid #b8c0cc;border-radius:8px;font:inherit;background:#fff}
input.code-input{font-family:ui-monospace,monospace;font-size:1.5rem;letter-spacing:.2em;text-transform:uppercase;text-align:center}
textarea{min-height:6rem;font-family:ui-monospace,monospace;font-size:.85rem}
.hint{color:var(--muted);font-size:.85rem;margin:.25rem 0 0}
.actions{display:flex;gap:.75rem;margin-top:1.25rem;flex-wrap:wrap}
button,.button{appearance:none;border:0;border-radius:8px;padding:.7rem 1.2rem;font:inherit;font-weight:600;cursor:pointer;background:var(--accent);color:#fff;text-decoration:none;display:inline-block}
button.approve{background:var(--ok)}button.deny,button.danger{background:var(--bad)}
button.small{padding:.3rem .7rem;font-size:.85rem}
button.link{background:none;color:#fff;padding:0;font-weight:400;text-decoration:underline}
.alert{border-radius:8px;padding:.75rem 1rem;margin-bottom:1rem}
.alert.error{background:#fdecea;color:var(--bad);border:1px solid #f5c2bd}
.alert.ok{background:#e7f6ec;color:var(--ok);border:1px solid #b7e1c4}
.alert.info{background:#eef2ff;color:#3730a3;border:1px solid #c7d2fe}
.muted{color:var(--muted)}
.nowrap{white-space:nowrap}
.empty{color:var(--muted);padding:1rem;text-align:center;background:var(--card)}
nav.tabs{display:flex;gap:.25rem;flex-wrap:wrap;border-bottom:1px solid var(--line);margin-bottom:1rem}
nav.tabs a{padding:.5rem .9rem;border-radius:8px 8px 0 0;text-decoration:none;color:var(--muted);font-weight:600}
nav.tabs a[aria-current=page]{background:var(--card);color:var(--fg);border:1px solid var(--line);border-bottom-color:var(--card);margin-bottom:-1px}
nav.tabs .count{display:inline-block;min-width:1.5rem;text-align:center;border-radius:999px;background:#eef2ff;color:#3730a3;font-size:.8rem;padding:0 .4rem}
form.search{display:flex;gap:.5rem;align-items:center;margin-bottom:1rem}
form.search input[type=search]{flex:1;padding:.6rem;border:1px solid #b8c0cc;border-radius:8px;font:inherit;background:#fff}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
td.pick,th.pick{width:2rem}
nav.pager{display:flex;gap:1rem;align-items:center;justify-content:flex-end;margin:.75rem 0}
form.bulk{margin:0 0 1rem}
.bulk-fields{display:grid;grid-template-columns:1fr 2fr;gap:1rem}
@media (max-width:640px){.bulk-fields{grid-template-columns:1fr}}
@media (max-width:640px){main{padding:.75rem}.usercode{font-size:1.6rem}dl.facts{grid-template-columns:1fr}dl.facts dt{margin-top:.4rem}th,td{padding:.4rem}}
`;
