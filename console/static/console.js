// fleetcert console: small enhancements. Every page works without them.
"use strict";
(function () {
  // Copy buttons: data-copy holds the text, data-copy-target the id of an
  // element whose text is copied. Hidden until JavaScript can run them.
  document.querySelectorAll("[data-copy], [data-copy-target]").forEach(function (btn) {
    btn.hidden = false;
    btn.addEventListener("click", function () {
      var text = btn.dataset.copy;
      if (text === undefined) {
        var el = document.getElementById(btn.dataset.copyTarget);
        text = el ? el.textContent : "";
      }
      var done = function () {
        var label = btn.getAttribute("aria-label");
        btn.classList.add("copied");
        btn.setAttribute("aria-label", "Copied");
        btn.title = "Copied";
        setTimeout(function () {
          btn.classList.remove("copied");
          if (label) btn.setAttribute("aria-label", label);
          btn.title = "Copy to clipboard";
        }, 1500);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done);
      } else {
        var ta = document.createElement("textarea");
        ta.value = text;
        ta.setAttribute("readonly", "");
        ta.style.position = "absolute";
        ta.style.left = "-9999px";
        document.body.appendChild(ta);
        ta.select();
        try { document.execCommand("copy"); done(); } finally { ta.remove(); }
      }
    });
  });

  // What only makes sense with JavaScript is shown by it, and what only
  // makes sense without it (a submit button beside a list that submits on
  // change) is hidden by it.
  document.querySelectorAll("[data-js-only]").forEach(function (el) { el.hidden = false; });
  document.querySelectorAll("[data-js-hide]").forEach(function (el) { el.hidden = true; });

  // Option menus open inline (they push the rows below down rather than
  // cover them), one at a time (the details share a name; closed here too
  // for browsers without that), and close on a click outside, on Tab out of
  // them, and on Escape anywhere.
  var menus = document.querySelectorAll("details.menu");
  // A press of the pointer moves focus at once (mousedown), but the click
  // that follows comes at mouseup: closing a menu on that focus change
  // would move the rows under the pointer between the two, and the click
  // would land on another row. A click outside closes the menu instead.
  var pressing = false;
  document.addEventListener("pointerdown", function () { pressing = true; }, true);
  document.addEventListener("pointerup", function () { setTimeout(function () { pressing = false; }, 0); }, true);
  document.addEventListener("pointercancel", function () { pressing = false; }, true);
  // A key moves focus by the keyboard: no press is under way, whether or
  // not the timeout above has run yet (a busy or background page runs it
  // late), so Tab out of a menu always closes it.
  document.addEventListener("keydown", function () { pressing = false; }, true);
  var closeAll = function (except) {
    menus.forEach(function (o) { if (o !== except && o.open) o.open = false; });
  };
  menus.forEach(function (m) {
    m.addEventListener("toggle", function () {
      if (!m.open) return;
      closeAll(m);
      var first = m.querySelector(".menu-items a, .menu-items button");
      if (first) first.focus({ preventScroll: true });
    });
    m.addEventListener("focusout", function (e) {
      // Focus moved to something outside the menu: Tab or Shift+Tab out.
      if (m.open && !pressing && e.relatedTarget && !m.contains(e.relatedTarget)) m.open = false;
    });
    m.addEventListener("keydown", function (e) {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        var items = Array.prototype.slice.call(m.querySelectorAll(".menu-items a, .menu-items button"));
        var i = items.indexOf(document.activeElement);
        if (i < 0) return;
        e.preventDefault();
        items[(i + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length].focus();
      }
    });
  });
  document.addEventListener("keydown", function (e) {
    if (e.key !== "Escape") return;
    menus.forEach(function (m) {
      if (!m.open) return;
      var inside = m.contains(document.activeElement);
      m.open = false;
      if (inside) m.querySelector("summary").focus();
    });
  });
  document.addEventListener("click", function (e) {
    menus.forEach(function (m) { if (m.open && !m.contains(e.target)) m.open = false; });
  });

  // Back from an action on a row: the address ends in #c-{id} (or #ca-{id});
  // the browser scrolled to the row, and focus goes to it so that the
  // keyboard carries on from there.
  if (location.hash.length > 1) {
    var row = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (row && row.tagName === "TR") {
      row.classList.add("returned");
      row.focus({ preventScroll: true });
      row.scrollIntoView({ block: "center" });
    }
  }

  // Lists that apply on change: the header's Region, the certificate
  // filters. Their submit buttons stay for use without JavaScript.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (sel) {
    sel.addEventListener("change", function () { sel.form.requestSubmit(); });
  });
  document.querySelectorAll("form[data-autosubmit-form]").forEach(function (f) {
    f.addEventListener("change", function () { f.requestSubmit(); });
  });
  // On a phone the filters start folded unless some are set.
  document.querySelectorAll("details[data-compact]").forEach(function (d) {
    if (window.matchMedia("(max-width: 600px)").matches && !d.querySelector(".tag")) d.open = false;
  });

  // A bulk action's progress: fetch the progress part of the page every
  // second until the action has finished.
  var job = document.querySelector("[data-poll]");
  if (job) {
    var poll = function () {
      fetch(job.dataset.poll, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
        if (!r.ok) throw new Error(r.status);
        return r.text();
      }).then(function (html) {
        job.innerHTML = html;
        if (!job.querySelector("#job-done")) setTimeout(poll, 1000);
      }).catch(function () { setTimeout(poll, 3000); });
    };
    setTimeout(poll, 500);
  }

  // "Use my certificate": list the chosen files with a choice and a Remove
  // button per file, and say at once when more files are chosen than can
  // be registered.
  var form = document.getElementById("register-form");
  if (form) {
    var input = document.getElementById("certificates");
    var list = document.getElementById("file-list");
    var error = document.getElementById("files-error");
    var tmpl = document.getElementById("file-row");
    var max = parseInt(form.dataset.maxFiles, 10);
    var render = function () {
      var kept = {};
      list.querySelectorAll("select").forEach(function (s) { kept[s.dataset.file] = s.value; });
      list.textContent = "";
      var files = input.files;
      error.hidden = files.length <= max;
      error.textContent = files.length > max ?
        "You chose " + files.length + " files; register at most " + max + " at a time." : "";
      input.setCustomValidity(error.textContent);
      list.hidden = files.length === 0 || files.length > max;
      for (var i = 0; i < files.length && i < max; i++) {
        var row = tmpl.content.firstElementChild.cloneNode(true);
        var sel = row.querySelector("select");
        var label = row.querySelector("label");
        var remove = row.querySelector(".file-remove");
        row.querySelector(".file-name").textContent = files[i].name;
        sel.name = "status_" + i;
        sel.id = "status_" + i;
        sel.dataset.file = files[i].name;
        if (kept[files[i].name]) sel.value = kept[files[i].name];
        label.htmlFor = sel.id;
        label.textContent = "After registering " + files[i].name;
        remove.setAttribute("aria-label", "Remove " + files[i].name);
        remove.dataset.index = i;
        remove.addEventListener("click", function (e) {
          // A FileList cannot be edited: build the selection again
          // without the file.
          var skip = parseInt(e.currentTarget.dataset.index, 10);
          var dt = new DataTransfer();
          Array.prototype.forEach.call(input.files, function (f, j) { if (j !== skip) dt.items.add(f); });
          input.files = dt.files;
          render();
          input.focus();
        });
        list.appendChild(row);
      }
    };
    input.addEventListener("change", render);
    render();
  }
})();
