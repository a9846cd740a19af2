// Gatehouse: small progressive enhancements. Pages work without this file.
"use strict";

document.addEventListener("click", function (ev) {
  var t = ev.target.closest("[data-confirm]");
  if (t && !window.confirm(t.getAttribute("data-confirm"))) {
    ev.preventDefault();
  }
});

document.addEventListener("click", function (ev) {
  var copy = ev.target.closest("[data-copy]");
  if (copy && navigator.clipboard) {
    navigator.clipboard.writeText(copy.getAttribute("data-copy")).then(function () {
      copy.textContent = "Copied";
    });
  }
  if (ev.target.closest("[data-print]")) {
    window.print();
  }
});
