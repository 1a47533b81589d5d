/**
 * The console's one stylesheet, served at /admin/assets/admin.css (the Content-Security-Policy
 * allows no inline style). Kept in a TypeScript module so `tsc` carries it into dist/.
 */
export const ADMIN_CSS = `
:root {
  color-scheme: light;
  --ink: #1d2330; --muted: #5a6475; --line: #d7dce4; --bg: #f5f7fa; --card: #fff;
  --accent: #1f5fbf; --accent-ink: #fff; --danger: #b3261e; --ok: #1e7a3c; --warn: #8a5a00;
  --focus: #f0a000;
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; color: var(--ink); background: var(--bg); }
a { color: var(--accent); }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: 0; background: var(--card); padding: .5rem 1rem; z-index: 10; }
.skip:focus { left: .5rem; top: .5rem; }
header.bar { background: #14213d; color: #fff; }
header.bar .inner { max-width: 72rem; margin: 0 auto; padding: .6rem 1rem; display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1.5rem; }
header.bar .brand { font-weight: 700; font-size: 1.1rem; color: #fff; text-decoration: none; margin-right: auto; }
header.bar nav ul { list-style: none; display: flex; flex-wrap: wrap; gap: .25rem 1rem; margin: 0; padding: 0; }
header.bar nav a { color: #dbe4f5; text-decoration: none; padding: .25rem 0; border-bottom: 2px solid transparent; }
header.bar nav a:hover { color: #fff; }
header.bar nav a[aria-current="page"] { color: #fff; border-bottom-color: #fff; }
header.bar .who { display: flex; align-items: center; gap: .75rem; font-size: .9rem; color: #dbe4f5; }
header.bar .who form { margin: 0; }
header.bar .who button { background: transparent; color: #fff; border: 1px solid #8ea3c8; }
main { max-width: 72rem; margin: 0 auto; padding: 1.25rem 1rem 3rem; }
h1 { font-size: 1.5rem; margin: .25rem 0 1rem; overflow-wrap: anywhere; }
h2 { font-size: 1.15rem; margin: 1.75rem 0 .75rem; }
p.lead { color: var(--muted); margin-top: -.5rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 1rem 1.25rem; margin-bottom: 1rem; }
.card > h2:first-child, .card > input[type="hidden"]:first-child + h2 { margin-top: 0; }
.card > .scroll { margin-top: .75rem; }
.card > .scroll:last-child { margin-bottom: 0; }
.notice { border-radius: 8px; padding: .75rem 1rem; margin-bottom: 1rem; border: 1px solid; }
.notice.ok { background: #e8f5ec; border-color: #9fd3b0; color: #124d26; }
.notice.error { background: #fdecea; border-color: #f1aca6; color: #7a1b14; }
.notice.info { background: #eaf1fc; border-color: #a9c3ec; color: #173a70; }
.notice code { word-break: break-all; }
form.inline { display: inline; }
.filters { display: flex; flex-wrap: wrap; gap: .75rem 1rem; align-items: flex-end; }
.field { display: flex; flex-direction: column; gap: .25rem; min-width: 12rem; flex: 1 1 12rem; }
.field.narrow { flex: 0 1 12rem; }
label { font-weight: 600; font-size: .9rem; }
.hint { color: var(--muted); font-size: .85rem; font-weight: 400; }
input[type="text"], input[type="search"], input[type="password"], input[type="url"], select {
  font: inherit; padding: .5rem .6rem; border: 1px solid #9aa5b5; border-radius: 6px; background: #fff; color: var(--ink); width: 100%; min-height: 2.5rem;
}
.check { display: flex; align-items: flex-start; gap: .5rem; font-weight: 400; }
.check input { margin-top: .3rem; width: 1.1rem; height: 1.1rem; }
button, .button {
  font: inherit; font-weight: 600; cursor: pointer; display: inline-block; text-decoration: none; text-align: center;
  padding: .5rem 1rem; min-height: 2.5rem; border-radius: 6px; border: 1px solid var(--accent); background: var(--accent); color: var(--accent-ink);
}
button.secondary, .button.secondary { background: #fff; color: var(--accent); }
button.danger, .button.danger { background: var(--danger); border-color: var(--danger); color: #fff; }
.actions { display: flex; flex-wrap: wrap; gap: .75rem; align-items: center; margin-top: 1rem; }
.actions form { margin: 0; }
.scroll { overflow-x: auto; background: var(--card); border: 1px solid var(--line); border-radius: 8px; margin-bottom: 1rem; }
.show-narrow { display: none; }
table { border-collapse: collapse; width: 100%; }
caption { text-align: left; padding: .75rem 1rem .25rem; font-weight: 600; }
th, td { text-align: left; padding: .55rem 1rem; border-bottom: 1px solid var(--line); vertical-align: top; }
thead th { font-size: .85rem; color: var(--muted); background: #fafbfd; white-space: nowrap; }
tbody tr:last-child td, tbody tr:last-child th { border-bottom: 0; }
td.wrap, dd { overflow-wrap: anywhere; }
.empty { color: var(--muted); padding: 1rem; margin: 0; }
dl.facts { display: grid; grid-template-columns: minmax(8rem, 14rem) 1fr; gap: .4rem 1rem; margin: 0; }
dl.facts dt { color: var(--muted); font-weight: 600; font-size: .9rem; }
dl.facts dd { margin: 0; }
.badge { display: inline-block; border-radius: 999px; padding: .05rem .6rem; font-size: .85rem; font-weight: 600; border: 1px solid; white-space: nowrap; }
.badge.active, .badge.done, .badge.ok, .badge.delivered, .badge.enabled { color: var(--ok); border-color: #9fd3b0; background: #eef8f1; }
.badge.needs_consent, .badge.retrying, .badge.queued, .badge.running, .badge.pending, .badge.stalled { color: var(--warn); border-color: #e5c27a; background: #fdf6e3; }
.badge.revoked, .badge.failed, .badge.error, .badge.stopped, .badge.disabled { color: var(--danger); border-color: #f1aca6; background: #fdecea; }
.badge.none { color: var(--muted); border-color: var(--line); background: #fff; }
ul.scopes { margin: 0; padding-left: 1.1rem; }
fieldset.events { border: 1px solid var(--line); border-radius: 6px; margin: 1rem 0 0; padding: .5rem 1rem .75rem; display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; }
fieldset.events legend { font-weight: 600; font-size: .9rem; padding: 0 .25rem; }
.pager { display: flex; justify-content: space-between; gap: 1rem; margin-top: 1rem; }
progress { width: 100%; height: 1.25rem; }
.secret { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #fff; border: 1px dashed var(--accent); border-radius: 6px; padding: .75rem; word-break: break-all; user-select: all; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em; }
.signin { max-width: 28rem; margin: 3rem auto; }
.signin h1 { margin-bottom: .25rem; }
@media (max-width: 40rem) {
  body { font-size: 15px; }
  main { padding: 1rem .75rem 2rem; }
  header.bar .inner { padding: .5rem .75rem; }
  header.bar .who { width: 100%; justify-content: space-between; }
  dl.facts { grid-template-columns: 1fr; gap: .1rem; }
  dl.facts dd { margin-bottom: .5rem; }
  th, td { padding: .5rem .6rem; }
  .hide-narrow { display: none; }
  .show-narrow { display: block; font-weight: 400; }
  .signin { margin: 1.5rem auto; }
  /* Tables of many columns become one block per row, each cell under its column's name. */
  table.stack thead { position: absolute; left: -9999px; }
  table.stack tr { display: block; border-bottom: 1px solid var(--line); padding: .4rem 0; }
  table.stack tbody tr:last-child { border-bottom: 0; }
  table.stack th, table.stack td { display: block; border: 0; padding: .2rem .75rem; }
  table.stack td[data-label]::before { content: attr(data-label); display: block; color: var(--muted); font-size: .8rem; font-weight: 600; }
}
`;
