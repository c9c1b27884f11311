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

// Setup: formula editor — highlighting over the textarea, live check
// against POST /setup/formula/check, insert buttons of the field picker
// and the function reference. Without script the textarea is a plain
// input and the page's own buttons check it.
(function () {
  var esc = function (s) { return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); };
  var TOKEN = /(\/\*[\s\S]*?\*\/)|("(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?)|(\d+(?:\.\d+)?)|([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)(\s*\()?|([-+*\/&=<>!^,]+)/g;
  function highlight(src) {
    var out = "", last = 0, m;
    TOKEN.lastIndex = 0;
    while ((m = TOKEN.exec(src)) !== null) {
      if (m[0] === "") { TOKEN.lastIndex++; continue; }
      out += esc(src.slice(last, m.index));
      if (m[1]) out += '<span class="t-cmt">' + esc(m[1]) + "</span>";
      else if (m[2]) out += '<span class="t-str">' + esc(m[2]) + "</span>";
      else if (m[3]) out += '<span class="t-num">' + m[3] + "</span>";
      else if (m[4] && m[5]) out += '<span class="t-fn">' + esc(m[4]) + "</span>" + esc(m[5]);
      else if (m[4]) out += /^(TRUE|FALSE|NULL|AND|OR|NOT)$/i.test(m[4]) ? '<span class="t-fn">' + esc(m[4]) + "</span>" : '<span class="t-field">' + esc(m[4]) + "</span>";
      else out += '<span class="t-op">' + esc(m[0]) + "</span>";
      last = TOKEN.lastIndex;
    }
    return out + esc(src.slice(last)) + "\n";
  }
  var lastEditor = null;
  document.querySelectorAll("[data-formula-editor]").forEach(function (box) {
    var ta = box.querySelector("textarea"), hl = box.querySelector(".formula-hl");
    var status = box.querySelector(".formula-status"), btn = box.querySelector("[data-formula-check]");
    if (!ta || !hl || !status) return;
    lastEditor = lastEditor || ta;
    box.classList.add("formula-on");
    var paint = function () { hl.innerHTML = highlight(ta.value); hl.scrollTop = ta.scrollTop; };
    var form = ta.form, timer = null;
    var csrfEl = (form && form.querySelector("input[name=_csrf]")) || document.querySelector("input[name=_csrf]");
    var objectOf = function () {
      var sel = form && form.querySelector("select[name=object]");
      return sel ? sel.value : box.dataset.object || "";
    };
    var typeOf = function () {
      var sel = form && form.querySelector("select[name=return_type]");
      return sel ? sel.value : box.dataset.returnType || "";
    };
    var check = function () {
      if (!csrfEl) return;
      var body = new URLSearchParams();
      body.set("_csrf", csrfEl.value); body.set("object", objectOf());
      body.set("expression", ta.value); body.set("return_type", typeOf());
      fetch("/setup/formula/check", { method: "POST", body: body, credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (d) {
          var h = "";
          if (d.message) h += '<p class="field-error">' + esc(d.message) + "</p>";
          (d.errors || []).forEach(function (e) {
            h += '<div class="formula-problem"><p class="field-error">Line ' + e.line + ", column " + e.column + ": " + esc(e.message) + '</p><pre class="formula-caret">' + esc(e.excerpt) + "\n" + esc(e.caret) + "</pre></div>";
          });
          if (d.ok) h += '<p class="formula-ok">Valid — returns ' + esc(d.return_type_label || d.return_type || "") + "</p>";
          status.innerHTML = h;
          box.classList.toggle("invalid", !d.ok);
          if (d.ok) ta.removeAttribute("aria-invalid"); else ta.setAttribute("aria-invalid", "true");
        })
        .catch(function () {});
    };
    ta.addEventListener("input", function () { paint(); clearTimeout(timer); timer = setTimeout(check, 700); });
    ta.addEventListener("scroll", function () { hl.scrollTop = ta.scrollTop; });
    ta.addEventListener("focus", function () { lastEditor = ta; });
    if (btn) { btn.hidden = false; btn.addEventListener("click", check); }
    paint();
  });
  document.querySelectorAll("[data-insert]").forEach(function (b) {
    b.addEventListener("click", function () {
      var ta = lastEditor; if (!ta) return;
      var s = ta.selectionStart || 0, e = ta.selectionEnd || 0, t = b.dataset.insert;
      ta.value = ta.value.slice(0, s) + t + ta.value.slice(e);
      ta.focus(); ta.selectionStart = ta.selectionEnd = s + (t.slice(-2) === "()" ? t.length - 1 : t.length);
      ta.dispatchEvent(new Event("input"));
    });
  });
  // Workflow action slots: show the parts of the chosen type only.
  document.querySelectorAll("[data-action-type]").forEach(function (sel) {
    var slot = sel.closest(".action-slot"); if (!slot) return;
    var sync = function () { slot.querySelectorAll(".action-part").forEach(function (p) { p.hidden = p.dataset.for !== sel.value; }); };
    sel.addEventListener("change", sync); sync();
  });
})();
// Setup: forms asking for a confirmation before they post.
document.querySelectorAll("form[data-confirm]").forEach(function (f) {
  f.addEventListener("submit", function (e) { if (!window.confirm(f.dataset.confirm)) e.preventDefault(); });
});
