/* The hospital scanning desk: a scanner field that always has focus, the desk camera (frames
 * decoded on the server), picture upload, a large answer, and the patient's PIN for settlement. */
"use strict";

(function () {
  var t = ECard.t;
  var desk = document.getElementById("desk");
  var csrf = desk.getAttribute("data-csrf");
  var input = document.getElementById("scan-input");
  var patient = document.getElementById("patient");
  var confirmForm = document.getElementById("confirm-form");
  var confirmPin = document.getElementById("confirm-pin");
  var confirmMsg = document.getElementById("confirm-msg");
  var busy = false;

  // --- the scanner field keeps the focus (handheld scanners type into whatever has it) ------

  function refocus() {
    var el = document.activeElement;
    if (el && el !== document.body && el !== input && el.id !== "h-patient") return;
    input.focus({ preventScroll: true });
  }
  input.addEventListener("blur", function () { setTimeout(refocus, 150); });
  document.addEventListener("click", function () { setTimeout(refocus, 150); });
  document.addEventListener("keydown", function (ev) {
    // A scanner starts typing while a button has focus: send the keys to the scanner field.
    var el = document.activeElement;
    if (ev.key.length === 1 && el && el.tagName === "BUTTON") input.focus({ preventScroll: true });
  });

  document.getElementById("scan-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var code = input.value.trim();
    input.value = "";
    if (code) scan({ json: { qr_token: code } });
  });

  // --- showing the answer --------------------------------------------------------------------

  function show(kind, stateText, res) {
    res = res || {};
    patient.className = "patient " + kind;
    var refused = res.status && res.status !== "active" ? res.status : "";  // a known card's state
    patient.setAttribute("data-result", res.valid ? "valid" : (refused || res.error || ""));
    document.getElementById("patient-state").textContent = stateText;
    document.getElementById("patient-state").removeAttribute("data-i18n");
    document.getElementById("patient-name").textContent = res.name || "";
    document.getElementById("patient-card").textContent = res.card_no || "";
    // The ID number (masked) and the birth date, to compare with the patient's ID document.
    var id = res.id_number_masked || "";
    if (id && res.birth_date) id += " · " + t("desk.born", { date: res.birth_date });
    document.getElementById("patient-id").textContent = id;
    document.getElementById("patient-card-status").textContent =
      res.status ? t("card.status") + ": " + ECard.statusLabel(res.status) : "";
    // How long the code stays valid is said only of a valid code (never of a refused card).
    document.getElementById("patient-validity").textContent =
      res.valid && typeof res.valid_for_s === "number" ? t("desk.valid_for", { s: res.valid_for_s }) : "";
  }

  /** "already used at 10:42 at your desk (2 min ago)" (or "just now"): the first use of a replayed code. */
  function usedText(res) {
    if (!res.used_at) return "";
    var when = new Date(res.used_at);
    if (isNaN(when.getTime())) return "";
    var hhmm = ("0" + when.getHours()).slice(-2) + ":" + ("0" + when.getMinutes()).slice(-2);
    var mins = Math.max(0, Math.floor((Date.now() - when.getTime()) / 60000));
    var ago = mins < 1 ? t("desk.ago_now") : t("desk.ago_min", { min: mins });
    var key = res.used_by === "this_desk" ? "desk.used_here" : (res.used_by === "other_desk" ? "desk.used_elsewhere" : "desk.used_at");
    return t(key, { time: hhmm, ago: ago });
  }

  function errorText(res) {
    // A known card that is not active says what it is (suspended, revoked) in the clerk's language.
    var code = res.status && res.status !== "active" ? res.status : (res.error || "token_invalid");
    if (code === "replayed" && res.used_at) return usedText(res) + " " + t("desk.error.replayed_next");
    if (ECard.has("desk.error." + code)) return t("desk.error." + code);
    return res.message || t("desk.error.token_invalid");
  }

  /** Show the answer to the last scan (again after a language switch). */
  var last = null;
  function present(r) {
    if (r.ok && r.body.valid) show("ok", t("desk.valid"), r.body);
    else if (r.status === 401 || r.status === 403) show("bad", errorText(r.body), {});
    else show("bad", errorText(r.body), r.body);
  }
  ECard.onLanguage(function () { if (last) present(last); });

  /** Send a scan (qr_token text or a picture) to the desk route; resolves to the answer. */
  var pending = null;
  function scan(opts) {
    if (busy) {
      if (!opts.quiet) pending = opts;  // a scanner code never gets lost: it runs next
      return Promise.resolve(null);
    }
    busy = true;
    if (!opts.quiet) { confirmForm.hidden = true; show("", t("desk.checking")); }
    return ECard.api("POST", "/hospital/scan", { csrf: csrf, json: opts.json, form: opts.form })
      .then(function (res) {
        busy = false;
        var body = res.body || {};
        if (opts.quiet && body.error === "qr_not_found") return body;
        confirmForm.hidden = true;
        last = { status: res.status, ok: res.ok, body: body };
        present(last);
        if (res.ok && body.valid) {
          confirmMsg.textContent = "";
          confirmMsg.className = "msg";
          confirmForm.hidden = false;
        } else if (body.error === "desk_session") {
          setTimeout(function () { location.reload(); }, 2500);
        }
        if (pending) { var next = pending; pending = null; scan(next); }
        return body;
      });
  }

  // --- settlement: the patient types their PIN on the desk keypad ---------------------------

  confirmForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var pin = confirmPin.value.trim();
    confirmPin.value = "";
    if (!/^[0-9]{6}$/.test(pin)) { confirmMsg.className = "msg bad"; confirmMsg.textContent = t("pin.pin_format"); return; }
    ECard.api("POST", "/hospital/confirm", { csrf: csrf, json: { pin: pin } }).then(function (res) {
      if (res.ok && res.body.confirmed) {
        confirmMsg.className = "msg ok";
        confirmMsg.textContent = t("desk.confirmed");
        confirmForm.querySelector("button").disabled = true;
        setTimeout(function () { confirmForm.querySelector("button").disabled = false; input.focus(); }, 1500);
      } else {
        confirmMsg.className = "msg bad";
        confirmMsg.textContent = ECard.errorText(res.body, "pin.");
      }
    });
  });

  // --- picture upload ------------------------------------------------------------------------

  var upload = document.getElementById("upload");
  // A real button opens the file chooser: it takes the keyboard focus and shows it.
  document.getElementById("upload-button").addEventListener("click", function () { upload.click(); });
  upload.addEventListener("change", function () {
    var file = upload.files && upload.files[0];
    if (!file) return;
    var form = new FormData();
    form.append("image", file, file.name || "picture.jpg");
    upload.value = "";
    scan({ form: form }).then(function () { input.focus(); });
  });

  // --- desk camera: a frame every 700 ms goes to the server until a code is read ------------

  var video = document.getElementById("desk-video");
  var toggle = document.getElementById("camera-toggle");
  var camState = document.getElementById("camera-state");
  var stream = null;
  var loop = null;
  var grab = document.createElement("canvas");

  function stopCamera() {
    clearInterval(loop);
    loop = null;
    if (stream) stream.getTracks().forEach(function (tr) { tr.stop(); });
    stream = null;
    video.hidden = true;
    camState.textContent = "";
    toggle.textContent = t("desk.camera");
    toggle.setAttribute("data-i18n", "desk.camera");
  }

  function sendFrame() {
    if (busy || !video.videoWidth) return;
    var scale = Math.min(1, 960 / Math.max(video.videoWidth, video.videoHeight));
    grab.width = Math.round(video.videoWidth * scale);
    grab.height = Math.round(video.videoHeight * scale);
    grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
    grab.toBlob(function (blob) {
      if (!blob || !stream) return;
      var form = new FormData();
      form.append("image", blob, "frame.jpg");
      scan({ form: form, quiet: true }).then(function (body) {
        if (body && body.error !== "qr_not_found") stopCamera();
        else if (stream) camState.textContent = t("desk.camera_looking");
      });
    }, "image/jpeg", 0.9);
  }

  toggle.addEventListener("click", function () {
    if (stream) { stopCamera(); input.focus(); return; }
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false })
      .then(function (s) {
        stream = s;
        video.srcObject = s;
        video.hidden = false;
        toggle.textContent = t("desk.camera_stop");
        toggle.setAttribute("data-i18n", "desk.camera_stop");
        camState.textContent = t("desk.camera_looking");
        loop = setInterval(sendFrame, 700);
        input.focus();
      }, function () { camState.textContent = t("enroll.camera_denied"); });
  });

  input.focus();
})();
