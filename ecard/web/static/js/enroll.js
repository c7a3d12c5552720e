/* The citizen's enrollment page: info -> consent -> camera -> challenge -> upload -> result ->
 * PIN -> card. Nothing leaves the phone before consent; frames are uploaded only after "Start". */
"use strict";

(function () {
  var t = ECard.t;
  var root = document.getElementById("enroll");
  var TOKEN_KEY = "ecard.enroll_token";
  var ID_KEY = "ecard.enroll_id";

  // The enrollment token arrives once in the URL. Move it to sessionStorage (this tab only) and
  // take it out of the address bar, history and any later Referer.
  var token = null;
  var enrollmentId = root.getAttribute("data-enrollment-id") || null;
  var m = location.pathname.match(/^\/enroll\/([^/]+)\/?$/);
  if (m) {
    token = decodeURIComponent(m[1]);
    try {
      sessionStorage.setItem(TOKEN_KEY, token);
      if (enrollmentId) sessionStorage.setItem(ID_KEY, enrollmentId);
      else sessionStorage.removeItem(ID_KEY);
    } catch (e) { /* storage disabled: the token stays in memory for this page view */ }
    history.replaceState(null, "", "/enroll");
  } else {
    try {
      token = sessionStorage.getItem(TOKEN_KEY);
      enrollmentId = enrollmentId || sessionStorage.getItem(ID_KEY);
    } catch (e) { token = null; }
  }

  var base = function () { return "/api/v1/enrollments/" + encodeURIComponent(enrollmentId); };
  var call = function (method, path, json) {
    return ECard.api(method, base() + path, { bearer: token, json: json });
  };

  function fatal(text) {
    document.getElementById("fatal-msg").textContent = text;
    ECard.showScreen("s-fatal");
  }

  function reasonText(code, fallback) {
    if (code && ECard.has("reason." + code)) return t("reason." + code);
    return fallback || t("reason.unknown");
  }

  // --- 1. personal info and agreement --------------------------------------------------------

  var info = null;
  /** The agreement in the page's language (one version covers every translation). */
  function showAgreement() {
    var a = (info && info.agreement) || {};
    var texts = a.texts || {};
    document.getElementById("agreement").textContent = texts[document.documentElement.lang] || a.text || "";
  }
  ECard.onLanguage(showAgreement);

  function load() {
    if (!token || !enrollmentId) { fatal(t("enroll.bad_link")); return; }
    call("GET", "").then(function (res) {
      if (!res.ok) { fatal(reasonText(res.body.error, t("enroll.bad_link"))); return; }
      info = res.body;
      var person = info.citizen || {};          // masked by the server
      document.getElementById("info-name").textContent = person.name || "";
      document.getElementById("info-id").textContent = person.id_number || "";
      showAgreement();
      var state = info.state;
      if (state === "verified") { showPin(); return; }
      if (state === "issued") {
        if (ECard.cardStore.get()) { location.replace("/card"); return; }
        fatal(t("enroll.done_elsewhere"));
        return;
      }
      if (state === "expired") { fatal(reasonText("enrollment_expired")); return; }
      if (state === "locked" || state === "failed") { fatal(reasonText("enrollment_locked")); return; }
      ECard.showScreen("s-info");
    });
  }
  document.getElementById("info-next").addEventListener("click", function () {
    if (info && info.state && info.state !== "authorized") { openCamera(); return; }
    ECard.showScreen("s-consent");
  });

  // --- 2. consent ----------------------------------------------------------------------------

  var consentCheck = document.getElementById("consent-check");
  var consentNext = document.getElementById("consent-next");
  consentCheck.addEventListener("change", function () { consentNext.disabled = !consentCheck.checked; });
  document.getElementById("consent-back").addEventListener("click", function () { ECard.showScreen("s-info"); });
  consentNext.addEventListener("click", function () {
    consentNext.disabled = true;
    call("POST", "/consent", { agree: true }).then(function (res) {
      consentNext.disabled = false;
      if (!res.ok) { document.getElementById("consent-msg").textContent = reasonText(res.body.error, ECard.errorText(res.body)); return; }
      openCamera();
    });
  });

  // --- 3. camera with live feedback (on the phone only: nothing is uploaded here) ------------

  var video = document.getElementById("video");
  var oval = document.getElementById("oval");
  var feedback = document.getElementById("feedback");
  var startBtn = document.getElementById("start");
  var cameraMsg = document.getElementById("camera-msg");
  var stream = null;
  var cueTimer = null;
  var lastCue = "";
  var probe = document.createElement("canvas");
  probe.width = 48; probe.height = 64;
  var detector = null;
  if ("FaceDetector" in window) {
    try { detector = new window.FaceDetector({ fastMode: true, maxDetectedFaces: 3 }); } catch (e) { detector = null; }
  }

  function setCue(key) {
    if (key === lastCue) return;
    lastCue = key;
    feedback.textContent = t("enroll.cue." + key);
    feedback.className = "feedback " + (key === "ok" ? "ok" : "bad");
    oval.className = "oval " + (key === "ok" ? "good" : "bad");
  }
  ECard.onLanguage(function () {
    if (lastCue) { var k = lastCue; lastCue = ""; setCue(k); }
    updateStartHint();
    var shown = document.getElementById("result-text");
    var reason = shown.getAttribute("data-reason");
    if (reason && shown.className.indexOf("bad") >= 0) shown.textContent = reasonText(reason, shown.textContent);
    if (ECard.cardStore.get() && !document.getElementById("s-card").hidden) ECard.renderCard(ECard.cardStore.get(), "active");
  });

  /** Cheap cues computed on the phone: mean brightness, and faces where the browser has a
   * FaceDetector (Chrome on Android, Safari); elsewhere only light is judged before capture. */
  function checkFrame() {
    if (!video.videoWidth) return;
    var ctx = probe.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(video, 0, 0, probe.width, probe.height);
    var px = ctx.getImageData(0, 0, probe.width, probe.height).data;
    var sum = 0;
    for (var i = 0; i < px.length; i += 4) sum += 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
    var mean = sum / (px.length / 4);
    if (mean < 45) { setCue("dark"); return; }
    if (mean > 225) { setCue("bright"); return; }
    if (detector) {
      detector.detect(video).then(function (faces) {
        faceCue(faces.length, faces.length ? faces[0].boundingBox.width / video.videoWidth : 0);
      }, function () { setCue("ok"); });
      return;
    }
    serverFaceCheck();
  }

  function faceCue(count, width) {
    if (!count) setCue("no_face");
    else if (count > 1) setCue("many");
    else if (width < 0.25) setCue("far");
    else setCue("ok");
  }

  /** Without a FaceDetector in the browser, a small still (360 px wide) goes to the server
   * about every 1.2 s while the citizen lines up, after consent only; it is not kept there. */
  var checking = false;
  var lastCheck = 0;
  var still = document.createElement("canvas");
  function serverFaceCheck() {
    if (checking || performance.now() - lastCheck < 1200 || !enrollmentId) return;
    checking = true;
    lastCheck = performance.now();
    var scale = Math.min(1, 360 / video.videoWidth);
    still.width = Math.round(video.videoWidth * scale);
    still.height = Math.round(video.videoHeight * scale);
    still.getContext("2d").drawImage(video, 0, 0, still.width, still.height);
    still.toBlob(function (blob) {
      if (!blob) { checking = false; return; }
      var form = new FormData();
      form.append("enrollment_id", enrollmentId);
      form.append("frame", blob, "still.jpg");
      ECard.api("POST", "/enroll/face-check", { bearer: token, form: form }).then(function (res) {
        checking = false;
        if (res.ok && cueTimer) faceCue(res.body.faces, res.body.face_width);
        else if (!res.ok && lastCue === "") setCue("ok");
      });
    }, "image/jpeg", 0.7);
  }

  function openCamera() {
    ECard.showScreen("s-camera");
    resetCameraScreen();
    if (stream) { startBtn.disabled = false; return; }
    feedback.textContent = t("enroll.camera_starting");
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      cameraMsg.textContent = t("enroll.camera_none");
      return;
    }
    navigator.mediaDevices.getUserMedia({
      video: { facingMode: "user", width: { ideal: 640 }, height: { ideal: 480 } }, audio: false
    }).then(function (s) {
      stream = s;
      video.srcObject = s;
      return video.play();
    }).then(function () {
      startBtn.disabled = false;
      cueTimer = setInterval(checkFrame, 400);
    }).catch(function (err) {
      feedback.textContent = "";
      cameraMsg.textContent = err && err.name === "NotFoundError" ? t("enroll.camera_none") : t("enroll.camera_denied");
    });
  }

  function stopCamera() {
    clearInterval(cueTimer);
    cueTimer = null;
    if (stream) stream.getTracks().forEach(function (tr) { tr.stop(); });
    stream = null;
    video.srcObject = null;
  }

  function resetCameraScreen() {
    document.getElementById("challenge-box").hidden = true;
    document.getElementById("upload-box").hidden = true;
    document.getElementById("prompt").hidden = true;
    document.getElementById("rec").hidden = true;
    cameraMsg.textContent = "";
    startBtn.hidden = false;
    if (stream) { clearInterval(cueTimer); cueTimer = setInterval(checkFrame, 400); }
    updateStartHint();
  }

  function updateStartHint() {
    document.getElementById("start-hint").textContent = t("enroll.start_hint");
  }

  // --- 4. challenge and capture --------------------------------------------------------------

  var FPS = 12;                 // frames per second sent to the server
  var MAX_SIDE = 480;           // longest side of each uploaded JPEG, in pixels
  var JPEG_QUALITY = 0.85;
  var PREROLL_S = 3;            // "get ready" countdown before recording (nothing recorded)
  var CUE_SHOW_MS = 900;        // how long "Blink now!" stays on screen around each cue

  startBtn.addEventListener("click", function () {
    startBtn.disabled = true;
    cameraMsg.textContent = "";
    call("POST", "/challenge").then(function (res) {
      if (!res.ok) {
        startBtn.disabled = false;
        showFailure(res.body.error, res.body.message);
        return;
      }
      runChallenge(res.body);
    });
  });

  function clipLength(ch) {
    var cues = ch.cues_ms || [];
    if (cues.length) return Math.max.apply(null, cues) + 2000;
    return Math.max(5000, (ch.blinks || 1) * 1500 + 2500);
  }

  function blinkText(n) { return n === 1 ? t("enroll.blink_times_1") : t("enroll.blink_times", { n: n }); }

  function runChallenge(ch) {
    var cues = (ch.cues_ms || []).slice().sort(function (a, b) { return a - b; });
    var duration = clipLength(ch);
    var box = document.getElementById("challenge-box");
    var text = document.getElementById("challenge-text");
    var countdown = document.getElementById("countdown");
    var fill = document.getElementById("cue-fill");
    var bar = document.getElementById("cue-bar");
    var prompt = document.getElementById("prompt");
    bar.querySelectorAll(".cue").forEach(function (el) { el.remove(); });
    cues.forEach(function (ms) {
      var mark = document.createElement("div");
      mark.className = "cue";
      mark.style.left = (100 * ms / duration) + "%";
      bar.appendChild(mark);
    });
    fill.style.width = "0%";
    startBtn.hidden = true;
    document.getElementById("start-hint").textContent = "";
    clearInterval(cueTimer);          // the framing cues pause while the challenge runs
    cueTimer = null;
    feedback.textContent = "";
    lastCue = "";
    box.hidden = false;
    text.textContent = blinkText(ch.blinks || cues.length || 1);
    prompt.hidden = false;
    prompt.className = "prompt";

    var left = PREROLL_S;
    prompt.textContent = t("enroll.get_ready") + " " + left;
    countdown.textContent = cues.length ? t("enroll.next_blink_in", { s: PREROLL_S + Math.ceil(cues[0] / 1000) }) : "";
    var pre = setInterval(function () {
      left -= 1;
      if (left > 0) { prompt.textContent = t("enroll.get_ready") + " " + left; return; }
      clearInterval(pre);
      record(ch, cues, duration);
    }, 1000);
  }

  function record(ch, cues, duration) {
    var text = document.getElementById("challenge-text");
    var countdown = document.getElementById("countdown");
    var fill = document.getElementById("cue-fill");
    var prompt = document.getElementById("prompt");
    var rec = document.getElementById("rec");
    var scale = Math.min(1, MAX_SIDE / Math.max(video.videoWidth, video.videoHeight));
    var canvas = document.createElement("canvas");
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    var ctx = canvas.getContext("2d");
    var frames = [];
    var pending = 0;
    var t0 = performance.now();
    var done = false;
    rec.hidden = false;
    prompt.textContent = blinkText(ch.blinks || cues.length || 1);

    var grab = setInterval(function () {
      if (done) return;
      var tMs = Math.round(performance.now() - t0);
      ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
      pending += 1;
      canvas.toBlob(function (blob) {
        pending -= 1;
        if (blob) frames.push({ blob: blob, t: tMs });
        if (done && pending === 0) finish();
      }, "image/jpeg", JPEG_QUALITY);
    }, Math.round(1000 / FPS));

    // Texts change only when their words change, so screen readers announce each prompt once.
    var put = function (node, value) { if (node.textContent !== value) node.textContent = value; };
    var ui = setInterval(function () {
      var el = performance.now() - t0;
      fill.style.width = Math.min(100, 100 * el / duration) + "%";
      var now = cues.some(function (c) { return el >= c - 150 && el <= c + CUE_SHOW_MS; });
      var next = cues.filter(function (c) { return c - 150 > el; })[0];
      var words = now ? t("enroll.blink_now")
        : (cues.length ? t("enroll.keep_looking") : blinkText(ch.blinks || 1));
      put(prompt, words);
      put(text, words);
      prompt.className = now ? "prompt now" : "prompt";
      var secsLeft = Math.max(0, Math.ceil((duration - el) / 1000));
      put(countdown, next !== undefined && !now
        ? t("enroll.next_blink_in", { s: Math.max(1, Math.ceil((next - el) / 1000)) })
        : t("enroll.recording", { s: secsLeft }));
      if (el >= duration) {
        clearInterval(grab);
        clearInterval(ui);
        done = true;
        if (pending === 0) finish();
      }
    }, 100);

    var finished = false;
    function finish() {
      if (finished) return;
      finished = true;
      rec.hidden = true;
      prompt.hidden = true;
      document.getElementById("challenge-box").hidden = true;
      frames.sort(function (a, b) { return a.t - b.t; });
      upload(ch, frames);
    }
  }

  // --- 5. upload with progress ---------------------------------------------------------------

  function upload(ch, frames) {
    var box = document.getElementById("upload-box");
    var label = document.getElementById("upload-text");
    var bar = document.getElementById("upload-progress");
    box.hidden = false;
    label.textContent = t("enroll.uploading");
    bar.value = 0;
    bar.setAttribute("value", "0");
    var form = new FormData();
    form.append("nonce", ch.nonce);
    // Each part is one JPEG; its capture time (ms since recording started) is in the file name
    // and, in the same order, in the "timestamps_ms" field.
    form.append("timestamps_ms", JSON.stringify(frames.map(function (f) { return f.t; })));
    frames.forEach(function (f, i) { form.append("frames", f.blob, "frame_" + i + "_" + f.t + ".jpg"); });
    box.setAttribute("data-frames", String(frames.length));
    box.setAttribute("data-bytes", String(frames.reduce(function (n, f) { return n + f.blob.size; }, 0)));
    var xhr = new XMLHttpRequest();
    xhr.open("POST", base() + "/liveness");
    xhr.setRequestHeader("Authorization", "Bearer " + token);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = function (ev) {
      if (ev.lengthComputable) bar.value = Math.round(100 * ev.loaded / ev.total);
    };
    xhr.upload.onload = function () {
      label.textContent = t("enroll.checking");
      bar.removeAttribute("value");   // indeterminate while the server analyses the clip
    };
    xhr.onerror = function () { box.hidden = true; showFailure("network", t("common.network")); };
    xhr.onload = function () {
      box.hidden = true;
      var body = {};
      try { body = JSON.parse(xhr.responseText || "{}"); } catch (e) { body = {}; }
      if (xhr.status >= 200 && xhr.status < 300) showResult(body);
      else if (xhr.status >= 500 || xhr.status === 0) showFailure("unavailable", t("common.unavailable"), body);
      else showFailure(body.error, body.message, body);
    };
    xhr.send(form);
  }

  // --- 6. result -----------------------------------------------------------------------------

  function showResult(body) {
    if (body.live && body.match) {
      stopCamera();
      document.getElementById("h-result").textContent = t("enroll.result_ok_heading");
      var txt = document.getElementById("result-text");
      txt.textContent = t("enroll.result_ok", { blinks: body.blinks });
      txt.className = "msg ok";
      document.getElementById("result-attempts").textContent = "";
      document.getElementById("result-next").hidden = false;
      document.getElementById("result-retry").hidden = true;
      ECard.showScreen("s-result");
      return;
    }
    var code = body.reason || (body.live === false ? "not_live" : (body.match === false ? "no_match" : null));
    showFailure(code, body.message, body);
  }

  function showFailure(code, message, body) {
    body = body || {};
    document.getElementById("h-result").textContent = t("enroll.result_fail_heading");
    var txt = document.getElementById("result-text");
    txt.textContent = reasonText(code, message);
    txt.className = "msg bad";
    txt.setAttribute("data-reason", code || "unknown");
    var left = body.attempts_left;
    document.getElementById("result-attempts").textContent =
      typeof left === "number" ? t("enroll.attempts_left", { n: left }) : "";
    var final = code === "enrollment_locked" || code === "enrollment_expired" ||
      body.state === "locked" || body.state === "failed" || body.state === "expired" || left === 0;
    document.getElementById("result-next").hidden = true;
    document.getElementById("result-retry").hidden = final;
    if (final) stopCamera();
    ECard.showScreen("s-result");
  }

  document.getElementById("result-retry").addEventListener("click", openCamera);
  document.getElementById("result-next").addEventListener("click", showPin);

  // --- 7. PIN, entered twice -----------------------------------------------------------------

  var firstPin = null;
  var pinMsg = document.getElementById("pin-msg");
  var pinPrompt = document.getElementById("pin-prompt");
  var pad = null;

  function showPin() {
    stopCamera();
    firstPin = null;
    pinPrompt.textContent = t("enroll.pin_heading");
    ECard.showScreen("s-pin");
    if (!pad) pad = new ECard.PinPad(onPin);
    pad.reset();
    document.getElementById("pin-input").focus({ preventScroll: true });
  }

  var issuing = false;
  function onPin(pin) {
    if (issuing) return;
    if (firstPin === null) {
      firstPin = pin;
      pinMsg.textContent = "";
      pinPrompt.textContent = t("enroll.pin_again");
      return;
    }
    if (pin !== firstPin) {
      firstPin = null;
      pinMsg.textContent = t("enroll.pin_mismatch");
      pinPrompt.textContent = t("enroll.pin_heading");
      return;
    }
    firstPin = null;
    issuing = true;
    pinPrompt.textContent = t("enroll.pin_issuing");
    call("POST", "/pin", { pin: pin }).then(function (res) {
      issuing = false;
      if (!res.ok) {
        var reason = res.body.reason || res.body.error;
        pinMsg.textContent = ECard.has("pin." + reason) ? t("pin." + reason) : ECard.errorText(res.body, "pin.");
        pinMsg.setAttribute("data-reason", reason || "");
        pinPrompt.textContent = t("enroll.pin_heading");
        return;
      }
      pinMsg.textContent = "";
      showCard(res.body.card, pin);
    });
  }

  // --- 8. the issued card and its QR code ----------------------------------------------------

  var qr = null;
  function showCard(card, pin) {
    ECard.cardStore.set(card);
    try { sessionStorage.removeItem(TOKEN_KEY); sessionStorage.removeItem(ID_KEY); } catch (e) { /* ignore */ }
    token = null;
    ECard.renderCard(card, "active");
    ECard.showScreen("s-card");
    qr = new ECard.QrRefresher(function () { return ECard.cardStore.get(); });
    qr.onStatus = function (status) { ECard.renderCard(ECard.cardStore.get(), status); };
    // The PIN the citizen has just chosen shows the first codes; it stays in memory only.
    qr.start(pin);
  }

  load();
})();
