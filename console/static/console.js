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

  // Option menus: one open at a time; Escape or a click elsewhere closes.
  var menus = document.querySelectorAll("details.menu");
  menus.forEach(function (m) {
    m.addEventListener("toggle", function () {
      if (!m.open) return;
      menus.forEach(function (o) { if (o !== m) o.open = false; });
      var first = m.querySelector(".menu-items a, .menu-items button");
      if (first) first.focus();
    });
    m.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && m.open) {
        m.open = false;
        m.querySelector("summary").focus();
      }
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        var items = Array.prototype.slice.call(m.querySelectorAll(".menu-items a, .menu-items button"));
        var i = items.indexOf(document.activeElement);
        if (i < 0) return;
        e.preventDefault();
        items[(i + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length].focus();
      }
    });
  });
  document.addEventListener("click", function (e) {
    menus.forEach(function (m) { if (m.open && !m.contains(e.target)) m.open = false; });
  });

  // "Use my certificate": list the chosen files with a status per file, and
  // say at once when more files are chosen than can be registered.
  var form = document.getElementById("register-form");
  if (form) {
    var input = document.getElementById("certificates");
    var list = document.getElementById("file-list");
    var error = document.getElementById("files-error");
    var tmpl = document.getElementById("file-row");
    var max = parseInt(form.dataset.maxFiles, 10);
    var render = function () {
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
        row.querySelector(".file-name").textContent = files[i].name;
        sel.name = "status_" + i;
        sel.id = "status_" + i;
        label.htmlFor = sel.id;
        label.textContent = "After registering " + files[i].name;
        list.appendChild(row);
      }
    };
    input.addEventListener("change", render);
    render();
  }
})();
