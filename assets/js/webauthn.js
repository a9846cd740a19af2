// Gatehouse: passkeys and security keys (WebAuthn). Loaded only on the pages
// that use them. The server sends the standard WebAuthn JSON options; the
// browser's JSON helpers turn them into what navigator.credentials wants,
// with a small base64url fallback for browsers without them.
"use strict";

(function () {
  var PKC = window.PublicKeyCredential;
  var supported = !!(PKC && navigator.credentials && navigator.credentials.create && navigator.credentials.get);

  var messages = {
    NotAllowedError: "Cancelled or timed out. Try again, or use another method.",
    InvalidStateError: "This key is already registered.",
    SecurityError: "Passkeys can't be used on this address.",
    NotSupportedError: "This browser or key doesn't support what this site asked for.",
    AbortError: "Cancelled.",
    unsupported: "This browser doesn't support passkeys or security keys. Use another browser, or another method."
  };

  // --- base64url fallback -------------------------------------------------

  function fromB64url(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function toB64url(buf) {
    if (!buf) return undefined;
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function decodeDescriptors(list) {
    return (list || []).map(function (d) {
      return Object.assign({}, d, { id: fromB64url(d.id) });
    });
  }

  function creationOptions(json) {
    if (PKC.parseCreationOptionsFromJSON) return PKC.parseCreationOptionsFromJSON(json);
    var o = Object.assign({}, json);
    o.challenge = fromB64url(json.challenge);
    o.user = Object.assign({}, json.user, { id: fromB64url(json.user.id) });
    if (json.excludeCredentials) o.excludeCredentials = decodeDescriptors(json.excludeCredentials);
    return o;
  }

  function requestOptions(json) {
    if (PKC.parseRequestOptionsFromJSON) return PKC.parseRequestOptionsFromJSON(json);
    var o = Object.assign({}, json);
    o.challenge = fromB64url(json.challenge);
    if (json.allowCredentials) o.allowCredentials = decodeDescriptors(json.allowCredentials);
    return o;
  }

  function credentialJSON(cred) {
    if (typeof cred.toJSON === "function") return cred.toJSON();
    var r = cred.response, response = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toB64url(r.attestationObject);
      if (r.getTransports) response.transports = r.getTransports();
    } else {
      response.authenticatorData = toB64url(r.authenticatorData);
      response.signature = toB64url(r.signature);
      response.userHandle = toB64url(r.userHandle);
    }
    return {
      id: cred.id, rawId: toB64url(cred.rawId), type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: response
    };
  }

  // --- page plumbing ------------------------------------------------------

  function csrfToken() {
    var f = document.querySelector("input[name=_csrf]");
    return f ? f.value : "";
  }

  // post sends JSON and resolves with the parsed answer; a refusal rejects
  // with {status, error, message} from the server's JSON error.
  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrfToken() },
      body: JSON.stringify(body)
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        if (!res.ok) {
          var err = new Error(data.message || "Something went wrong. Reload the page and try again.");
          err.status = res.status;
          err.code = data.error || "";
          err.server = true;
          throw err;
        }
        return data;
      });
    });
  }

  // status writes progress (polite) or an error (assertive) into the live
  // regions next to the control.
  function status(scope, text, isError) {
    var ok = scope.querySelector("[data-wa-status]");
    var bad = scope.querySelector("[data-wa-error]");
    if (ok) ok.textContent = isError ? "" : text;
    if (bad) {
      bad.textContent = isError ? text : "";
      bad.hidden = !(isError && text);
    }
  }

  function describe(err) {
    if (!err) return messages.NotAllowedError;
    if (err.server) return err.message;
    return messages[err.name] || ("Your browser refused: " + (err.message || err.name));
  }

  function busy(button, on) {
    if (!button) return;
    button.disabled = on;
    button.setAttribute("aria-busy", on ? "true" : "false");
  }

  // --- sign-in and second factor -------------------------------------------

  var conditional = null; // AbortController of a pending autofill request

  function assert(begin, finish, opts) {
    return post(begin, {}).catch(function (err) {
      err.stage = "begin";
      throw err;
    }).then(function (start) {
      var req = { publicKey: requestOptions(start.options.publicKey) };
      if (opts && opts.mediation) req.mediation = opts.mediation;
      if (opts && opts.signal) req.signal = opts.signal;
      return navigator.credentials.get(req).then(function (cred) {
        return post(finish, { ceremony: start.ceremony, credential: credentialJSON(cred) });
      });
    }).then(function (done) {
      window.location.assign(done.redirect);
    });
  }

  function onAssertClick(button) {
    var scope = button.closest("[data-wa-scope]") || document;
    if (!supported) {
      status(scope, messages.unsupported, true);
      return;
    }
    if (conditional) {
      conditional.abort();
      conditional = null;
    }
    busy(button, true);
    status(scope, "Follow your browser's prompt to use your passkey or security key…", false);
    assert(button.getAttribute("data-begin"), button.getAttribute("data-finish")).catch(function (err) {
      busy(button, false);
      status(scope, describe(err), true);
      button.focus();
    });
  }

  // startAutofill offers the workspace's passkeys in the email field's
  // autofill menu (conditional mediation), when the browser can.
  function startAutofill() {
    var button = document.querySelector("[data-webauthn=passkey]");
    if (!button || !supported || !PKC.isConditionalMediationAvailable) return;
    PKC.isConditionalMediationAvailable().then(function (ok) {
      if (!ok) return;
      conditional = new AbortController();
      var scope = button.closest("[data-wa-scope]") || document;
      assert(button.getAttribute("data-begin"), button.getAttribute("data-finish"),
        { mediation: "conditional", signal: conditional.signal }).catch(function (err) {
        // Aborting (the button took over) is silent, and so is a failure to
        // start, which the member did not ask for; a refused passkey is not.
        if (!err || err.name === "AbortError" || err.stage === "begin") return;
        if (err && err.server) status(scope, err.message, true);
      });
    }).catch(function () {});
  }

  // --- adding a key ---------------------------------------------------------

  function onRegister(form) {
    var scope = form.closest("[data-wa-scope]") || form;
    var button = form.querySelector("button[type=submit]");
    if (!supported) {
      status(scope, messages.unsupported, true);
      return;
    }
    var name = form.querySelector("input[name=name]").value;
    busy(button, true);
    status(scope, "Follow your browser's prompt to create a passkey or touch your security key…", false);
    post(form.getAttribute("data-begin"), { name: name }).then(function (start) {
      return navigator.credentials.create({ publicKey: creationOptions(start.options.publicKey) }).then(function (cred) {
        return post(form.getAttribute("data-finish"), { ceremony: start.ceremony, credential: credentialJSON(cred) });
      });
    }).then(function (added) {
      if (added.recovery_codes && added.recovery_codes.length) {
        showCodes(added.recovery_codes);
        return;
      }
      window.location.assign(form.getAttribute("data-done"));
    }).catch(function (err) {
      busy(button, false);
      if (err && err.code === "step_up_required") {
        window.location.assign(form.getAttribute("data-verify"));
        return;
      }
      status(scope, describe(err), true);
      button.focus();
    });
  }

  // showCodes shows the recovery codes of a first second factor, once: they
  // live only in this page, never in storage.
  function showCodes(codes) {
    var panel = document.querySelector("[data-wa-codes]");
    var main = document.getElementById("main");
    var list = panel.querySelector("ol");
    var text = "Recovery codes for " + (panel.getAttribute("data-account") || "your account") + "\n\n" + codes.join("\n") + "\n";
    list.textContent = "";
    codes.forEach(function (c) {
      var li = document.createElement("li"), code = document.createElement("code");
      code.textContent = c;
      li.appendChild(code);
      list.appendChild(li);
    });
    panel.querySelector("[data-copy]").setAttribute("data-copy", text);
    panel.querySelector("a[download]").setAttribute("href", "data:text/plain;charset=utf-8," + encodeURIComponent(text));
    Array.prototype.forEach.call(main.children, function (el) {
      if (el !== panel && el.tagName !== "H1") el.hidden = true;
    });
    panel.hidden = false;
    var h = panel.querySelector("h1, h2");
    h.setAttribute("tabindex", "-1");
    h.focus();
    window.scrollTo(0, 0);
  }

  // --- WebAuthn Signal API ------------------------------------------------------

  // signal tells the password manager which of this member's passkeys still
  // exist, and which one was just removed, so it stops offering them.
  function signal() {
    var el = document.querySelector("[data-wa-signal]");
    if (!el || !PKC) return;
    var rpId = el.getAttribute("data-rp-id"), userId = el.getAttribute("data-user-id");
    var removed = el.getAttribute("data-removed");
    var ids = (el.getAttribute("data-credential-ids") || "").split(" ").filter(Boolean);
    if (removed && PKC.signalUnknownCredential) {
      PKC.signalUnknownCredential({ rpId: rpId, credentialId: removed }).catch(function () {});
    }
    if (userId && PKC.signalAllAcceptedCredentials) {
      PKC.signalAllAcceptedCredentials({ rpId: rpId, userId: userId, allAcceptedCredentialIds: ids }).catch(function () {});
    }
  }

  document.addEventListener("click", function (ev) {
    var b = ev.target.closest("[data-webauthn=passkey], [data-webauthn=assert]");
    if (b) {
      ev.preventDefault();
      onAssertClick(b);
    }
  });

  document.addEventListener("submit", function (ev) {
    var f = ev.target.closest("form[data-webauthn=register]");
    if (f) {
      ev.preventDefault();
      onRegister(f);
    }
  });

  startAutofill();
  signal();
})();
