/* The citizen's enrollment page: info -> consent -> camera (framing) -> live capture -> result ->
 * PIN -> card. Nothing leaves the phone before consent; before "Start" only small framing
 * stills go to the server (not kept); after "Start" frames stream in batches through the live
 * capture protocol (docs/liveness-protocol.md) and the server reveals each cue when it is due. */
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
      if (!res.ok) {
        // an ended enrollment's link opens nothing any more; the card lives on this phone
        if (res.body.error === "enrollment_ended" && ECard.cardStore.get()) { location.replace("/card"); return; }
        // no tries left: the way forward (back to the city app, the help line), not a dead end
        if (res.body.error === "enrollment_locked") { showFailure("enrollment_locked", null, { attempts_left: 0 }); return; }
        fatal(reasonText(res.body.error, t("enroll.bad_link")));
        return;
      }
      info = res.body;
      if (typeof info.attempts_left === "number") attemptsLeft = info.attempts_left;
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
      if (state === "locked" || state === "failed") { showFailure("enrollment_locked", null, { attempts_left: 0 }); return; }
      ECard.showScreen("s-info");
    });
  }
  document.getElementById("info-next").addEventListener("click", function () {
    unlockAudio();
    if (info && info.state && info.state !== "authorized") { openCamera(); return; }
    ECard.showScreen("s-consent");
  });

  // --- 2. consent ----------------------------------------------------------------------------

  var consentCheck = document.getElementById("consent-check");
  var consentNext = document.getElementById("consent-next");
  consentCheck.addEventListener("change", function () { consentNext.disabled = !consentCheck.checked; });
  document.getElementById("consent-back").addEventListener("click", function () { ECard.showScreen("s-info"); });
  consentNext.addEventListener("click", function () {
    unlockAudio();     // a tap: the beep and the voice may play from now on
    consentNext.disabled = true;
    call("POST", "/consent", { agree: true }).then(function (res) {
      consentNext.disabled = false;
      if (!res.ok) { document.getElementById("consent-msg").textContent = reasonText(res.body.error, ECard.errorText(res.body)); return; }
      openCamera();
    });
  });

  // --- 3. camera and framing (before "Start": one face, well framed, well lit, sharp) ---------

  var video = document.getElementById("video");
  var oval = document.getElementById("oval");
  var cameraBox = document.getElementById("camera-box");
  var instruction = document.getElementById("instruction");
  var startBtn = document.getElementById("start");
  var startHint = document.getElementById("start-hint");
  var cameraHelp = document.getElementById("camera-help");
  var cameraMsg = document.getElementById("camera-msg");
  var checkingBox = document.getElementById("checking");
  var cueNow = document.getElementById("cue-now");
  var recBadge = document.getElementById("rec");
  var cameraScreen = document.getElementById("s-camera");
  var stream = null;
  var phase = "off";            // off | framing | recording | checking
  var attemptsLeft = null;      // from the enrollment, then from every capture and finish
  var opening = false;

  /** Box aspect of the preview (CSS .camera, 3:4): what the citizen sees is what is sent. */
  var VIEW_ASPECT = 3 / 4;
  /** The part of the camera picture that the preview shows (object-fit: cover). */
  function visibleRect() {
    var vw = video.videoWidth, vh = video.videoHeight;
    if (vw / vh > VIEW_ASPECT) { var sw = Math.round(vh * VIEW_ASPECT); return [Math.round((vw - sw) / 2), 0, sw, vh]; }
    var sh = Math.round(vw / VIEW_ASPECT);
    return [0, Math.round((vh - sh) / 2), vw, sh];
  }
  /** Draw the visible part of the camera into `canvas`, scaled so its long side is `side`. */
  function drawVisible(canvas, side) {
    var r = visibleRect();
    var scale = Math.min(1, side / Math.max(r[2], r[3]));
    var w = Math.max(2, Math.round(r[2] * scale)), h = Math.max(2, Math.round(r[3] * scale));
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    canvas.getContext("2d").drawImage(video, r[0], r[1], r[2], r[3], 0, 0, w, h);
  }

  // Voice, beep and vibration: one instruction at a time, also for people who see badly.
  var audio = null;
  function unlockAudio() {
    try {
      var AC = window.AudioContext || window.webkitAudioContext;
      if (!audio && AC) audio = new AC();
      if (audio && audio.state === "suspended") audio.resume();
    } catch (e) { audio = null; }
  }
  function beep() {
    if (!audio) return;
    try {
      var now = audio.currentTime, osc = audio.createOscillator(), gain = audio.createGain();
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.0001, now);
      gain.gain.exponentialRampToValueAtTime(0.6, now + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + 0.35);
      osc.connect(gain); gain.connect(audio.destination);
      osc.start(now); osc.stop(now + 0.4);
    } catch (e) { /* no sound on this phone: the words on screen still say it */ }
  }
  function vibrate(ms) { try { if (navigator.vibrate) navigator.vibrate(ms); } catch (e) { /* ignore */ } }
  function say(text) {
    instruction.setAttribute("data-spoken", text);
    if (!("speechSynthesis" in window) || typeof window.SpeechSynthesisUtterance !== "function") return;
    try {
      window.speechSynthesis.cancel();
      var u = new window.SpeechSynthesisUtterance(text);
      u.lang = ECard.lang() === "zh-CN" ? "zh-CN" : "en-US";
      u.rate = 0.9;
      window.speechSynthesis.speak(u);
    } catch (e) { /* no voice: the words stay on screen */ }
  }

  /** The one instruction under the preview (also read by screen readers: aria-live). */
  var instr = { key: "", vars: null, tone: "" };
  function instruct(key, tone, speak, vars) {
    instr = { key: key, tone: tone || "", vars: vars || null };
    var text = t(key, vars || undefined);
    if (instruction.textContent !== text) instruction.textContent = text;
    instruction.className = "instruction" + (tone ? " " + tone : "");
    if (speak) say(text);
    return text;
  }

  function showTries() {
    var el = document.getElementById("tries-left");
    if (typeof attemptsLeft !== "number") { el.textContent = ""; return; }
    el.textContent = attemptsLeft === 1 ? t("enroll.tries_one") : t("enroll.tries_left", { n: attemptsLeft });
  }

  ECard.onLanguage(function () {
    if (instr.key) instruct(instr.key, instr.tone, false, instr.vars);
    showTries();
    if (lastResult) renderResult(lastResult);
    if (ECard.cardStore.get() && !document.getElementById("s-card").hidden) ECard.renderCard(ECard.cardStore.get(), "active");
  });

  function setPhase(next) {
    phase = next;
    cameraScreen.setAttribute("data-phase", next);
    var framingOrRec = next === "framing" || next === "recording";
    cameraBox.hidden = !framingOrRec;
    instruction.hidden = !framingOrRec;
    checkingBox.hidden = next !== "checking";
    startBtn.hidden = next !== "framing";
    startHint.hidden = next !== "framing";
    recBadge.hidden = next !== "recording";
    document.getElementById("tries-left").hidden = next !== "framing";
    if (next !== "recording") cueNow.hidden = true;
    document.getElementById("h-camera").textContent =
      t(next === "recording" ? "enroll.recording_heading" : next === "checking" ? "enroll.checking_heading" : "enroll.camera_heading");
    document.getElementById("h-camera").setAttribute("data-i18n",
      next === "recording" ? "enroll.recording_heading" : next === "checking" ? "enroll.checking_heading" : "enroll.camera_heading");
  }

  // Framing: a small still of what the preview shows goes to the server about every 0.7 s
  // (after consent only, never stored); its answer says what to change, if anything.
  var FRAMING_MS = 700;
  var FRAMING_SIDE = 480;
  var framingTimer = null;
  var framingBusy = false;
  var framingErrors = 0;
  var still = document.createElement("canvas");
  var verdict = { now: "", count: 0, spoken: "", spokenAt: 0 };

  function framingTick() {
    if (phase !== "framing" || framingBusy || !video.videoWidth || !enrollmentId) return;
    framingBusy = true;
    drawVisible(still, FRAMING_SIDE);
    still.toBlob(function (blob) {
      if (!blob || phase !== "framing") { framingBusy = false; return; }
      var form = new FormData();
      form.append("enrollment_id", enrollmentId);
      form.append("frame", blob, "still.jpg");
      ECard.api("POST", "/enroll/face-check", { bearer: token, form: form }).then(function (res) {
        framingBusy = false;
        if (phase !== "framing") return;
        if (res.ok) { framingErrors = 0; applyVerdict(res.body.verdict || legacyVerdict(res.body)); return; }
        // The check is only a help: if the server cannot run it, do not lock the citizen out.
        framingErrors += 1;
        if (framingErrors >= 2) applyVerdict("unchecked");
      });
    }, "image/jpeg", 0.7);
  }

  function legacyVerdict(body) {
    if (!body.faces) return "no_face";
    if (body.faces > 1) return "many";
    return body.face_width < 0.25 ? "far" : "ok";
  }

  var VERDICT_KEYS = {
    ok: "enroll.cue.ok", no_face: "enroll.cue.no_face", many: "enroll.cue.many", far: "enroll.cue.far",
    close: "enroll.cue.close", off_centre: "enroll.cue.off_centre", dark: "enroll.cue.dark",
    bright: "enroll.cue.bright", blurry: "enroll.cue.blurry", unchecked: "enroll.cue.unchecked"
  };

  function applyVerdict(v) {
    if (!VERDICT_KEYS[v]) v = "no_face";
    if (v === verdict.now) verdict.count += 1;
    else { verdict.now = v; verdict.count = 1; }
    var good = v === "ok" || v === "unchecked";
    oval.className = "oval " + (good ? "good" : "bad");
    instruction.setAttribute("data-verdict", v);
    if (good && startBtn.disabled) {
      // Large text on a small phone: bring Start into view the moment it can be pressed.
      try { startBtn.scrollIntoView({ block: "nearest", behavior: "smooth" }); } catch (e) { /* old browser */ }
    }
    startBtn.disabled = !good;
    // Speak a change once it has held for two checks (not every flicker), at most every 4 s.
    var now = performance.now();
    var speak = verdict.spoken !== v && (good || verdict.count >= 2) && now - verdict.spokenAt > 4000;
    if (speak) { verdict.spoken = v; verdict.spokenAt = now; }
    instruct(VERDICT_KEYS[v], good ? "ok" : "warn", speak);
  }

  function startFraming() {
    setPhase("framing");
    verdict = { now: "", count: 0, spoken: "", spokenAt: 0 };
    startBtn.disabled = true;
    oval.className = "oval";
    instruct("enroll.cue.looking", "", false);
    instruction.removeAttribute("data-verdict");
    clearInterval(framingTimer);
    framingTimer = setInterval(framingTick, FRAMING_MS);
    framingTick();
  }

  function openCamera() {
    ECard.showScreen("s-camera");
    cameraHelp.hidden = true;
    showTries();
    if (stream) { startFraming(); return; }
    setPhase("framing");
    startBtn.disabled = true;
    instruct("enroll.camera_starting", "", false);
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) { cameraProblem("enroll.camera_none"); return; }
    if (opening) return;
    opening = true;
    navigator.mediaDevices.getUserMedia({
      video: { facingMode: "user", width: { ideal: 640 }, height: { ideal: 480 } }, audio: false
    }).then(function (s) {
      stream = s;
      video.srcObject = s;
      return video.play();
    }).then(function () {
      opening = false;
      startFraming();
    }).catch(function (err) {
      opening = false;
      if (stream) { stream.getTracks().forEach(function (tr) { tr.stop(); }); stream = null; }
      cameraProblem(err && err.name === "NotFoundError" ? "enroll.camera_none" : "enroll.camera_denied");
    });
  }

  /** Camera refused or missing: say why, how to allow it (also inside other apps), retry. */
  function cameraProblem(key) {
    setPhase("off");
    cameraBox.hidden = true;
    instruction.hidden = true;
    startBtn.hidden = true;
    startHint.hidden = true;
    cameraMsg.textContent = t(key);
    cameraMsg.setAttribute("data-i18n", key);
    cameraHelp.hidden = false;
    say(t(key));
  }
  document.getElementById("camera-retry").addEventListener("click", function () {
    unlockAudio();
    openCamera();
  });

  function stopCamera() {
    clearInterval(framingTimer);
    framingTimer = null;
    if (stream) stream.getTracks().forEach(function (tr) { tr.stop(); });
    stream = null;
    video.srcObject = null;
    phase = "off";
  }

  // --- 4. live capture: frames stream in small batches, the server reveals each cue ----------

  /** Defaults until the server's answer to "capture" says otherwise (docs/liveness-protocol.md). */
  var DEFAULTS = { batch_ms: 400, max_batch_frames: 24, fps: 12, max_side: 320, max_ms: 20000 };
  /** Average upload the page aims at (bytes per second): ~480 kbit/s, well under a weak 3G
   * uplink's 750 kbit/s, so batches never queue up. JPEG quality follows it, within bounds. */
  var TARGET_BPS = 60000;
  var Q_START = 0.6, Q_MIN = 0.5, Q_MAX = 0.7;
  var CUE_MIN_MS = 900, CUE_MAX_MS = 1800;
  /** After a cue, the frames of this long (ms) are the ones the answer is seen in. */
  var CUE_WINDOW_MS = 1700;
  /** Long side of the frames, px: the server's max_side at most, down to SIDE_MIN on a slow link. */
  var SIDE_MIN = 288, SIDE_STEP = 32;
  var capture = null;

  startBtn.addEventListener("click", function () {
    if (startBtn.disabled || phase !== "framing") return;
    unlockAudio();
    startCapture();
  });

  function startCapture() {
    clearInterval(framingTimer);
    framingTimer = null;
    var cap = {
      id: null, cfg: Object.assign({}, DEFAULTS), frames: [], seq: 0, inflight: false,
      t0: performance.now(), lastT: -1, n: 0, stopped: false, finishing: false, failed: false,
      quality: Q_START, side: DEFAULTS.max_side, cuesShown: 0, cueOn: false, cueAt: 0, cueT: null, endedAt: 0,
      bytes: 0, sentFrames: 0, batches: 0, retries: 0, thinned: 0, canvas: document.createElement("canvas"),
      grabTimer: null, pumpTimer: null, maxTimer: null, cueTimer: null
    };
    capture = cap;
    cameraScreen.setAttribute("data-t0", String(Math.round(cap.t0)));
    cameraScreen.setAttribute("data-cues", "0");
    setPhase("recording");
    oval.className = "oval good";
    instruct("enroll.look_and_listen", "", true);
    // Recording starts at once (frames wait on the phone until the capture is open).
    grab(cap);
    call("POST", "/capture").then(function (res) {
      if (capture !== cap) return;
      if (!res.ok) {
        abortCapture(cap);
        if (res.status >= 500 || res.status === 0) showFailure(res.status ? "unavailable" : "network", null, res.body);
        else showFailure(res.body.error, res.body.message, res.body);
        return;
      }
      var b = res.body;
      cap.id = b.capture_id;
      ["batch_ms", "max_batch_frames", "fps", "max_side", "max_ms"].forEach(function (k) {
        if (typeof b[k] === "number" && b[k] > 0) cap.cfg[k] = b[k];
      });
      cap.side = Math.min(cap.side, cap.cfg.max_side);
      if (typeof b.attempts_left === "number") attemptsLeft = b.attempts_left;
      if (cap.stopped) { waitEncoded(cap); return; }   // max_ms passed before the answer came
      var elapsed = performance.now() - cap.t0;
      cap.maxTimer = setTimeout(function () { stopRecording(cap, "max"); }, Math.max(0, cap.cfg.max_ms - elapsed));
      schedulePump(cap);
    });
  }

  function grab(cap) {
    if (cap.stopped || capture !== cap) return;
    var now = performance.now();
    var tMs = Math.round(now - cap.t0);
    if (tMs >= cap.cfg.max_ms - 50) { stopRecording(cap, "max"); return; }
    if (tMs <= cap.lastT) tMs = cap.lastT + 1;
    cap.lastT = tMs;
    if (video.videoWidth) {
      drawVisible(cap.canvas, cap.side);
      var rec = { t: tMs, blob: null };
      cap.frames.push(rec);
      cap.canvas.toBlob(function (blob) { rec.blob = blob || false; }, "image/jpeg", cap.quality);
    }
    cap.n += 1;
    var interval = 1000 / cap.cfg.fps;
    var next = cap.t0 + cap.n * interval;
    cap.grabTimer = setTimeout(function () { grab(cap); }, Math.max(0, next - performance.now()));
  }

  /** Send a batch on the capture's batch clock (every batch_ms since its first frame). */
  function schedulePump(cap) {
    clearTimeout(cap.pumpTimer);
    if (cap.stopped) return;
    var el = performance.now() - cap.t0;
    var next = (Math.floor(el / cap.cfg.batch_ms) + 1) * cap.cfg.batch_ms;
    cap.pumpTimer = setTimeout(function () { pump(cap); schedulePump(cap); }, next - el);
  }

  /** Frames ready to go, in order (a frame still being encoded holds back the ones after it).
   * When the connection or the server fell behind and more frames wait than one batch takes,
   * the batch keeps every frame of the answer time after the latest cue (where the blink must
   * be seen at the full rate) and the newest frame, and spreads the rest evenly over the
   * waiting time: a lower frame rate for a moment instead of frames that arrive too late. */
  function readyFrames(cap) {
    var ready = [];
    while (cap.frames.length && cap.frames[0].blob !== null) {
      var f = cap.frames.shift();
      if (f.blob) ready.push(f);
    }
    var most = cap.cfg.max_batch_frames;
    if (ready.length <= most) return ready;
    var keep = ready.map(function () { return false; });
    var left = most - 1;
    keep[ready.length - 1] = true;
    ready.forEach(function (fr, i) {
      if (left > 0 && !keep[i] && cap.cueT !== null && fr.t >= cap.cueT && fr.t <= cap.cueT + CUE_WINDOW_MS) { keep[i] = true; left -= 1; }
    });
    var others = [];
    keep.forEach(function (k, i) { if (!k) others.push(i); });
    for (var j = 0; j < left && others.length; j++) keep[others[Math.floor((j + 0.5) * others.length / left)]] = true;
    var out = ready.filter(function (fr, i) { return keep[i]; });
    cap.thinned += ready.length - out.length;
    return out;
  }

  /** One batch at a time: never two in flight; recording goes on meanwhile. */
  function pump(cap) {
    if (cap.inflight) { cap.missedTick = true; return; }
    cap.missedTick = false;
    if (!cap.id || cap.failed || capture !== cap) return;
    if (cap.finishing && cap.stopReason === "done") return;
    var batch = readyFrames(cap);
    if (!batch.length) {
      if (cap.stopped) maybeFinish(cap);
      return;
    }
    sendBatch(cap, batch);
  }

  function sendBatch(cap, batch) {
    cap.inflight = true;
    var form = new FormData();
    form.append("seq", String(cap.seq));
    form.append("timestamps_ms", JSON.stringify(batch.map(function (f) { return f.t; })));
    var size = 0;
    batch.forEach(function (f, i) { size += f.blob.size; form.append("frames", f.blob, "f" + cap.seq + "_" + i + ".jpg"); });
    var path = "/capture/" + encodeURIComponent(cap.id) + "/frames";
    ECard.api("POST", base() + path, { bearer: token, form: form }).then(function (res) {
      cap.inflight = false;
      if (capture !== cap || cap.failed) return;
      var code = res.body.error;
      if (res.ok || (res.status === 409 && code === "batch_repeated")) {
        cap.seq += 1;
        cap.batches += 1;
        cap.bytes += size;
        cap.sentFrames += batch.length;
        cap.retries = 0;
        // Behind (more than a batch and a half waits): smaller frames until the link keeps up.
        var waiting = cap.frames.length, perBatch = cap.cfg.fps * cap.cfg.batch_ms / 1000;
        adaptQuality(cap, waiting > 1.5 * perBatch ? Infinity : size / batch.length, waiting <= perBatch);
        if (res.ok) onAnswer(cap, res.body);
      } else if (res.status === 0 && cap.retries < 3) {
        cap.retries += 1;          // a network hiccup: the same batch again, same seq
        cap.frames = batch.concat(cap.frames);
      } else if (res.status === 422 && code === "frames_too_late") {
        // The connection fell behind: these frames are too old to count. Drop them, go on.
        adaptQuality(cap, Infinity, false);
      } else if (code === "capture_too_long" || code === "too_many_frames" || code === "capture_finished") {
        stopRecording(cap, "done");  // the server has all it takes: ask for the verdict
        cap.frames = [];
      } else {
        failCapture(cap, res);
        return;
      }
      if (cap.stopped) { if (cap.stopReason === "done") maybeFinish(cap); else pump(cap); }
      else if (cap.missedTick) pump(cap);    // a batch is overdue: send what waited at once
    });
  }

  /** Keep the average upload near TARGET_BPS and the batches flowing: JPEG quality first,
   * then the frame size; back up only while the link keeps up (`keepingUp`). */
  function adaptQuality(cap, perFrame, keepingUp) {
    var target = TARGET_BPS / cap.cfg.fps;
    if (perFrame > target * 1.1) {
      if (cap.quality > Q_MIN + 0.001) cap.quality = Math.max(Q_MIN, cap.quality - 0.08);
      else if (cap.side > SIDE_MIN) cap.side = Math.max(SIDE_MIN, cap.side - SIDE_STEP);
    } else if (perFrame < target * 0.7 && keepingUp) {
      if (cap.side < Math.min(DEFAULTS.max_side, cap.cfg.max_side)) cap.side += SIDE_STEP;
      else cap.quality = Math.min(Q_MAX, cap.quality + 0.04);
    }
  }

  function onAnswer(cap, body) {
    if (cap.stopped) {
      if (body.done) { cap.stopReason = "done"; cap.frames = []; }   // no need to send the rest
      return;
    }
    var isNew = typeof body.cues_shown === "number" ? body.cues_shown > cap.cuesShown : (body.cue && !cap.cueOn);
    if (typeof body.cues_shown === "number") cap.cuesShown = body.cues_shown;
    if (body.cue && isNew) showCue(cap, body.action || "blink");
    cap.cueOn = !!body.cue;
    if (!body.cue && !cueNow.hidden && performance.now() - cap.cueAt >= CUE_MIN_MS) hideCue(cap);
    if (cueNow.hidden) {
      if (body.face === "none") { oval.className = "oval bad"; instruct("enroll.keep_in_oval", "warn", false); }
      else if (body.face === "multiple") { oval.className = "oval bad"; instruct("enroll.cue.many", "warn", false); }
      else { oval.className = "oval good"; if (instr.key !== "enroll.look_and_listen") instruct("enroll.keep_looking", "", false); }
    }
    if (body.done) stopRecording(cap, "done");
  }

  function showCue(cap, action) {
    var key = action === "blink" ? "enroll.blink_now" : "enroll.action." + action;
    cueNow.textContent = t(key);
    cueNow.hidden = false;
    cap.cueAt = performance.now();
    cap.cueT = cap.cueAt - cap.t0;
    cameraScreen.setAttribute("data-cues", String((Number(cameraScreen.getAttribute("data-cues")) || 0) + 1));
    beep();
    vibrate(250);
    instruct(key, "now", true);
    clearTimeout(cap.cueTimer);
    cap.cueTimer = setTimeout(function () { hideCue(cap); }, CUE_MAX_MS);
  }

  function hideCue(cap) {
    clearTimeout(cap.cueTimer);
    cueNow.hidden = true;
    if (!cap.stopped && phase === "recording") instruct("enroll.keep_looking", "", false);
  }

  /** Recording ends: the server said it has seen enough ("done"), or max_ms passed. The
   * preview goes away at once so nobody thinks the phone is still recording. */
  function stopRecording(cap, why) {
    if (cap.stopped) return;
    cap.stopped = true;
    cap.stopReason = why;
    cap.endedAt = performance.now();
    clearTimeout(cap.grabTimer);
    clearTimeout(cap.pumpTimer);
    clearTimeout(cap.maxTimer);
    clearTimeout(cap.cueTimer);
    setPhase("checking");
    say(t("enroll.checking"));
    if (why === "done") cap.frames = [];   // the server has what it needs
    if (!cap.id) return;                   // finished once the capture is open (or it failed)
    if (why === "done") maybeFinish(cap);
    else waitEncoded(cap);
  }

  function waitEncoded(cap) {
    if (cap.frames.some(function (f) { return f.blob === null; })) { setTimeout(function () { waitEncoded(cap); }, 20); return; }
    pump(cap);
  }

  function maybeFinish(cap) {
    if (cap.finishing || cap.inflight || cap.failed) return;
    if (cap.stopReason !== "done" && cap.frames.length) { pump(cap); return; }
    cap.finishing = true;
    call("POST", "/capture/" + encodeURIComponent(cap.id) + "/finish").then(function (res) {
      if (capture !== cap) return;
      capture = null;
      var stats = {
        ended: cap.endedAt, bytes: cap.bytes, frames: cap.sentFrames, batches: cap.batches,
        lastT: cap.lastT, thinned: cap.thinned, grabbed: cap.n, quality: cap.quality, side: cap.side
      };
      if (typeof res.body.attempts_left === "number") attemptsLeft = res.body.attempts_left;
      if (res.ok) showResult(res.body, stats);
      else if (res.status >= 500 || res.status === 0) showFailure("unavailable", t("common.unavailable"), res.body, stats);
      else showFailure(res.body.error, res.body.message, res.body, stats);
    });
  }

  function failCapture(cap, res) {
    cap.failed = true;
    abortCapture(cap);
    if (res.status >= 500 || res.status === 0) showFailure(res.status ? "unavailable" : "network", null, res.body);
    else showFailure(res.body.error, res.body.message, res.body);
  }

  function abortCapture(cap) {
    cap.stopped = true;
    if (!cap.endedAt) cap.endedAt = performance.now();
    clearTimeout(cap.grabTimer);
    clearTimeout(cap.pumpTimer);
    clearTimeout(cap.maxTimer);
    clearTimeout(cap.cueTimer);
    cap.frames = [];
    if (capture === cap) capture = null;
  }

  // --- 5. result: plain words, what comes next or what to do differently ----------------------

  var lastResult = null;
  var resultScreen = document.getElementById("s-result");

  function recordStats(stats) {
    if (!stats) return;
    var shown = performance.now();
    resultScreen.setAttribute("data-latency-ms", String(Math.round(shown - stats.ended)));
    resultScreen.setAttribute("data-bytes", String(stats.bytes));
    resultScreen.setAttribute("data-frames", String(stats.frames));
    resultScreen.setAttribute("data-batches", String(stats.batches));
    resultScreen.setAttribute("data-duration-ms", String(stats.lastT));
    resultScreen.setAttribute("data-thinned", String(stats.thinned));
    resultScreen.setAttribute("data-grabbed", String(stats.grabbed));
    resultScreen.setAttribute("data-jpeg", stats.side + " px, q " + stats.quality.toFixed(2));
  }

  function showResult(body, stats) {
    if (body.live && body.match) {
      stopCamera();
      lastResult = { ok: true };
      renderResult(lastResult);
      ECard.showScreen("s-result");
      recordStats(stats);
      say(t("enroll.result_ok_heading") + ". " + t("enroll.result_ok_next"));
      return;
    }
    var code = body.reason || (body.live === false ? "not_live" : (body.match === false ? "no_match" : null));
    showFailure(code, body.message, body, stats);
  }

  function showFailure(code, message, body, stats) {
    body = body || {};
    if (typeof body.attempts_left === "number") attemptsLeft = body.attempts_left;
    var final = code === "enrollment_locked" || code === "enrollment_expired" ||
      body.state === "locked" || body.state === "failed" || body.state === "expired" || attemptsLeft === 0;
    lastResult = { ok: false, code: code || "unknown", message: message, final: final };
    if (final) stopCamera();
    else { clearInterval(framingTimer); framingTimer = null; phase = "off"; }
    renderResult(lastResult);
    ECard.showScreen("s-result");
    recordStats(stats);
    say(document.getElementById("result-text").textContent);
  }

  function renderResult(r) {
    var mark = document.getElementById("result-mark");
    var txt = document.getElementById("result-text");
    var next = document.getElementById("result-next-text");
    var tries = document.getElementById("result-attempts");
    if (r.ok) {
      mark.className = "mark ok";
      mark.textContent = "\u2713";
      document.getElementById("h-result").textContent = t("enroll.result_ok_heading");
      txt.textContent = t("enroll.result_ok");
      txt.className = "msg ok";
      txt.removeAttribute("data-reason");
      next.textContent = t("enroll.result_ok_next");
      tries.textContent = "";
      document.getElementById("result-next").hidden = false;
      document.getElementById("result-retry").hidden = true;
      document.getElementById("result-way").hidden = true;
      return;
    }
    mark.className = "mark again";
    mark.textContent = "!";
    document.getElementById("h-result").textContent = t(r.final ? "enroll.result_final_heading" : "enroll.result_fail_heading");
    txt.textContent = reasonText(r.code, r.message);
    txt.className = "msg warn";
    txt.setAttribute("data-reason", r.code);
    next.textContent = r.final ? "" : t("enroll.result_retry_hint");
    tries.textContent = r.final ? (r.code === "enrollment_locked" ? "" : t("enroll.tries_none"))
      : (typeof attemptsLeft === "number" ? (attemptsLeft === 1 ? t("enroll.tries_one") : t("enroll.tries_left", { n: attemptsLeft })) : "");
    document.getElementById("result-next").hidden = true;
    document.getElementById("result-retry").hidden = r.final;
    document.getElementById("result-way").hidden = !r.final;
  }

  document.getElementById("result-retry").addEventListener("click", function () { lastResult = null; openCamera(); });
  document.getElementById("result-next").addEventListener("click", function () { lastResult = null; showPin(); });

  // --- 7. PIN, entered twice -----------------------------------------------------------------

  var firstPin = null;
  var pinMsg = document.getElementById("pin-msg");
  var pinPrompt = document.getElementById("pin-prompt");
  var pad = null;

  /** A recovery (purpose "recover") sets a new PIN on the existing card, or reports its loss. */
  function recovering() { return !!(info && info.purpose === "recover"); }

  function showPin() {
    stopCamera();
    firstPin = null;
    pinPrompt.textContent = t("enroll.pin_heading");
    document.getElementById("recover-loss").hidden = !recovering();
    if (recovering()) document.getElementById("h-pin").textContent = t("recover.heading");
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
    call("POST", recovering() ? "/recovery/pin" : "/pin", { pin: pin }).then(function (res) {
      issuing = false;
      if (!res.ok) {
        var reason = res.body.reason || res.body.error;
        pinMsg.textContent = ECard.has("pin." + reason) ? t("pin." + reason) : ECard.errorText(res.body, "pin.");
        pinMsg.setAttribute("data-reason", reason || "");
        pinPrompt.textContent = t("enroll.pin_heading");
        return;
      }
      pinMsg.textContent = "";
      showCard(res.body.card, pin, res.body.status);
    });
  }

  document.getElementById("recover-suspend").addEventListener("click", function () {
    var msg = document.getElementById("recover-msg");
    call("POST", "/recovery/suspend").then(function (res) {
      if (!res.ok) { msg.className = "msg bad"; msg.textContent = ECard.errorText(res.body, "reason."); return; }
      msg.className = "msg ok";
      msg.textContent = t("recover.suspended");
      document.getElementById("recover-suspend").disabled = true;
    });
  });

  // --- 8. the issued card and its QR code ----------------------------------------------------

  var qr = null;
  function showCard(card, pin, status) {
    ECard.cardStore.set(card);
    try { sessionStorage.removeItem(TOKEN_KEY); sessionStorage.removeItem(ID_KEY); } catch (e) { /* ignore */ }
    token = null;
    ECard.renderCard(card, status || "active");
    ECard.showScreen("s-card");
    qr = new ECard.QrRefresher(function () { return ECard.cardStore.get(); });
    qr.onStatus = function (status) { ECard.renderCard(ECard.cardStore.get(), status); };
    // The PIN the citizen has just chosen shows the first codes; it stays in memory only.
    qr.start(pin);
  }

  load();
})();
