// The dashboard's one script, served at /static/dashboard.js (the CSP allows scripts from the gate
// itself only, no inline ones). The page works without it; with it:
// - the waiting tab reloads itself every data-refresh-seconds to show new machines, but only while the
//   admin leaves the page alone: never once anything was typed, chosen or ticked, nor while a field
//   has the focus (a reload would throw away a half-made decision; issue 13);
// - a header checkbox ticks or clears every row of the page.
export const DASHBOARD_JS = `"use strict";
(function () {
  var root = document.querySelector("[data-refresh-seconds]");
  if (!root) return;
  var loadedAt = Date.now();
  var touched = false;
  var touch = function () { touched = true; };
  document.addEventListener("input", touch, true);
  document.addEventListener("change", touch, true);
  document.querySelectorAll("input[data-select-all]").forEach(function (all) {
    all.addEventListener("change", function () {
      all.closest("table").querySelectorAll("tbody input[type=checkbox]").forEach(function (box) { box.checked = all.checked; });
    });
  });
  var busy = function () {
    var a = document.activeElement;
    return touched || (a !== null && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName)) || document.querySelector("input[type=checkbox]:checked") !== null;
  };
  setInterval(function () {
    // read at every tick, so the page (or a test) may change it
    var seconds = Number(root.getAttribute("data-refresh-seconds"));
    if (seconds > 0 && Date.now() - loadedAt >= seconds * 1000 && !busy()) location.reload();
  }, 1000);
})();
`;
