// Mosaic web app: progressive enhancement only. Every page works without
// this script; with it, lookups get a type-ahead, deletes ask to confirm,
// list counts load after the rows, and a few keys are shortcuts.
(function () {
  "use strict";

  function debounce(fn, ms) {
    var t;
    return function () { var a = arguments; clearTimeout(t); t = setTimeout(function () { fn.apply(null, a); }, ms); };
  }

  // Type-ahead lookups: the visible input searches, the hidden one keeps the id.
  document.querySelectorAll("[data-lookup]").forEach(function (box) {
    var input = box.querySelector("input[type=text]");
    var hidden = box.querySelector("input[type=hidden]");
    var list = box.querySelector("[role=listbox]");
    var items = [], active = -1;
    function close() { list.hidden = true; input.setAttribute("aria-expanded", "false"); active = -1; }
    function choose(i) {
      if (!items[i]) return;
      input.value = items[i].name; hidden.value = items[i].id; close();
    }
    function paint() {
      list.textContent = "";
      items.forEach(function (it, i) {
        var li = document.createElement("li");
        li.id = list.id + "-" + i; li.setAttribute("role", "option");
        li.setAttribute("aria-selected", i === active ? "true" : "false");
        li.textContent = it.name || "(no name)";
        li.addEventListener("mousedown", function (e) { e.preventDefault(); choose(i); });
        list.appendChild(li);
      });
      list.hidden = items.length === 0;
      input.setAttribute("aria-expanded", items.length ? "true" : "false");
      if (active >= 0) input.setAttribute("aria-activedescendant", list.id + "-" + active);
      else input.removeAttribute("aria-activedescendant");
    }
    var search = debounce(function () {
      fetch("/lookup/" + encodeURIComponent(box.dataset.lookup) + "?q=" + encodeURIComponent(input.value),
            { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : []; })
        .then(function (data) { items = Array.isArray(data) ? data : []; active = -1; paint(); })
        .catch(function () { items = []; paint(); });
    }, 150);
    input.addEventListener("input", function () { hidden.value = ""; search(); });
    input.addEventListener("focus", search);
    input.addEventListener("blur", function () { setTimeout(close, 100); });
    input.addEventListener("keydown", function (e) {
      if (list.hidden) return;
      if (e.key === "ArrowDown") { active = Math.min(items.length - 1, active + 1); paint(); e.preventDefault(); }
      else if (e.key === "ArrowUp") { active = Math.max(0, active - 1); paint(); e.preventDefault(); }
      else if (e.key === "Enter" && active >= 0) { choose(active); e.preventDefault(); }
      else if (e.key === "Escape") { close(); }
    });
  });

  // Delete asks to confirm here, then posts the confirmation page's form.
  document.querySelectorAll("[data-confirm-delete]").forEach(function (a) {
    a.addEventListener("click", function (e) {
      if (!window.confirm("Delete this record? This cannot be undone here.")) { e.preventDefault(); }
    });
  });

  // List view selector submits on change.
  document.querySelectorAll("[data-autosubmit]").forEach(function (s) {
    s.addEventListener("change", function () { s.form.submit(); });
  });

  // Record counts load after the first rows are on screen.
  document.querySelectorAll("[data-count-url]").forEach(function (el) {
    if (!el.querySelector("a")) return;
    fetch(el.dataset.countUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) { if (d && typeof d.count === "number") el.textContent = d.count + " records"; })
      .catch(function () {});
  });

  // Keyboard shortcuts (not while typing).
  document.addEventListener("keydown", function (e) {
    var t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    var go = function (sel) { var el = document.querySelector(sel); if (el) { e.preventDefault(); el.click(); } };
    if (e.key === "/") { var q = document.getElementById("global-q"); if (q) { e.preventDefault(); q.focus(); } }
    else if (e.key === "n") go("[data-shortcut=n]");
    else if (e.key === "e") go("[data-shortcut=e]");
    else if (e.key === "?") { var h = document.getElementById("shortcuts"); if (h) h.hidden = !h.hidden; }
  });

  // The first field with an error takes the focus.
  var bad = document.querySelector("[aria-invalid=true]");
  if (bad) bad.focus();
})();
