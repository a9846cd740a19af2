// Gatehouse: small progressive enhancements. Pages work without this file.
"use strict";

document.addEventListener("click", function (ev) {
  var t = ev.target.closest("[data-confirm]");
  if (t && !window.confirm(t.getAttribute("data-confirm"))) {
    ev.preventDefault();
  }
});
