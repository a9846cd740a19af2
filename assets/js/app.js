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
    var status = document.querySelector("[data-copy-status]");
    navigator.clipboard.writeText(copy.getAttribute("data-copy")).then(function () {
      copy.textContent = "Copied";
      if (status) status.textContent = "The codes are on your clipboard.";
    }, function () {
      if (status) status.textContent = "Copying didn't work; select the codes and copy them, or download them.";
    });
  }
  if (ev.target.closest("[data-print]")) {
    window.print();
  }
});
