// Gatehouse: the challenge page's "trust this browser" box also applies to
// the passkey or security key button, whose request is not a form post:
// keep its finish URL's trust_device parameter in step with the box.
"use strict";

document.addEventListener("change", function (ev) {
  var box = ev.target.closest("input[data-trust-device]");
  if (!box) return;
  document.querySelectorAll("[data-webauthn=assert]").forEach(function (button) {
    var u = new URL(button.getAttribute("data-finish"), window.location.href);
    if (box.checked) {
      u.searchParams.set("trust_device", "1");
    } else {
      u.searchParams.delete("trust_device");
    }
    button.setAttribute("data-finish", u.pathname + u.search);
  });
});
