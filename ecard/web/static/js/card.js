/* Back to the card: card number + PIN (or the card already saved on this phone), the card, its
 * refreshing QR code, report of loss and the application's timeline. The card token is kept in
 * this device's localStorage only. */
"use strict";

(function () {
  var t = ECard.t;
  var qr = new ECard.QrRefresher(function () { return ECard.cardStore.get(); });
  var status = "active";
  qr.onStatus = function (s) { setStatus(s); };

  /** The card number in groups of four, easier to read out and to copy on paper. */
  function grouped(no) { return (no || "").replace(/(\d{4})(?=\d)/g, "$1 "); }

  function cardNo() { return (ECard.jwtPayload(ECard.cardStore.get() || "") || {}).card_no || ""; }

  function renderKeep() {
    document.getElementById("card-no-grouped").textContent = grouped(cardNo());
    document.getElementById("keep-way").textContent =
      t("card.keep_way", { url: location.origin + "/card" });
  }

  function setStatus(s) {
    status = s || "active";
    ECard.renderCard(ECard.cardStore.get(), status);
    renderKeep();
    var active = status === "active";
    document.getElementById("lost-open").hidden = !active;
    document.getElementById("lost-panel").hidden = !active;
    if (!active) {
      qr.stop();
      document.getElementById("qr-img").hidden = true;
      document.getElementById("qr-countdown").textContent = "";
      document.getElementById("qr-pin-form").hidden = true;
      document.getElementById("qr-msg").textContent = t("card.qr_suspended");
    }
  }

  function whenText(at) { return new Date(at).toLocaleString(ECard.lang()); }

  /** Where a PIN was typed: the hospital's name, or which of the holder's screens. */
  function whereText(ev) {
    if (ev.where) return ev.where;
    if (ev.by === "hospital") return t("card.where_hospital");
    return t(ev.action === "login" ? "card.where_login"
      : ev.action === "qr" ? "card.where_qr" : "card.where_device");
  }

  /** A wrong PIN (or one refused after wrong ones) entered anywhere: a security alert. */
  function alertText(ev) {
    var key = ev.outcome === "wrong_pin" ? "card.alert_wrong_pin" : "card.alert_pin_refused";
    return t(key, { where: whereText(ev), time: whenText(ev.at) });
  }

  function eventText(ev) {
    if (ev.alert) return alertText(ev);
    var key = "event." + ev.action;
    var text = ECard.has(key) ? t(key) : ev.action;
    if (ev.where && ECard.has(key + "_at")) text = t(key + "_at", { where: ev.where });
    // Outcomes are shown only when they add something: a failure reason or a scan's answer.
    var outcome = "";
    if (ev.action.indexOf("card_") === 0) return text;
    if (ECard.has("event.outcome." + ev.outcome)) outcome = t("event.outcome." + ev.outcome);
    else if (ECard.has("reason." + ev.outcome)) outcome = t("reason." + ev.outcome);
    return outcome ? text + " — " + outcome : text;
  }

  var events = [];
  function renderTimeline() {
    var list = document.getElementById("timeline");
    list.textContent = "";
    events.forEach(function (ev) {
      var li = document.createElement("li");
      if (ev.alert) li.className = "alert";
      var when = document.createElement("time");
      when.dateTime = ev.at;
      when.textContent = whenText(ev.at);
      li.appendChild(when);
      li.appendChild(document.createTextNode(eventText(ev)));
      list.appendChild(li);
    });
    document.getElementById("timeline-panel").hidden = !events.length;
    // The alerts again at the top of the page, newest first, where they cannot be missed.
    var alerts = document.getElementById("alerts");
    alerts.textContent = "";
    events.filter(function (ev) { return ev.alert; }).reverse().forEach(function (ev) {
      var li = document.createElement("li");
      li.textContent = alertText(ev);
      alerts.appendChild(li);
    });
    document.getElementById("alerts-panel").hidden = !alerts.children.length;
    document.getElementById("alerts-hint").hidden = status !== "active";
    renderResult();
  }

  /** The city-service app the card was applied in (the first step of the timeline). */
  function appName() {
    for (var i = 0; i < events.length; i++) {
      if (events[i].action === "authorize" && events[i].where) return events[i].where;
    }
    return t("card.next_app");
  }

  /** A suspended card: the result of the report and the next step, at the top of the page. */
  function renderResult() {
    var box = document.getElementById("lost-result");
    box.hidden = status !== "suspended";
    if (box.hidden) return;
    document.getElementById("lost-msg").textContent = t("card.reported");
    document.getElementById("next-new-card").textContent = t("card.next_new_card", { app: appName() });
  }

  ECard.onLanguage(function () {
    if (!ECard.cardStore.get()) return;
    setStatus(status);
    renderTimeline();
    if (!document.getElementById("forget-ask").hidden) askForget();
  });

  /** Status and timeline from the server (the card token proves which card). */
  function loadOverview() {
    return ECard.api("GET", "/card/overview", { bearer: ECard.cardStore.get() }).then(function (res) {
      if (!res.ok) {
        if (res.status === 401) {
          // A newer copy was opened elsewhere (card number + PIN, or a new PIN after a face
          // check): this one no longer works. Say so, and keep the card number for the login.
          var old = ECard.jwtPayload(ECard.cardStore.get() || "") || {};
          ECard.cardStore.clear();
          showLogin();
          if (res.body && res.body.error === "token_superseded") {
            document.getElementById("login-msg").textContent = t("card.superseded");
            if (old.card_no) {
              document.getElementById("login-card-no").value = old.card_no;
              document.getElementById("login-pin").focus();
            }
          }
        }
        return;
      }
      setStatus(res.body.status);
      events = res.body.events || [];
      renderTimeline();
    });
  }

  function showCard(pin) {
    ECard.renderCard(ECard.cardStore.get(), status);
    ECard.showScreen("s-card");
    loadOverview().then(function () {
      if (status !== "active") return;
      if (pin) qr.start(pin);
      else qr.askPin("");
    });
  }

  function showLogin() {
    qr.stop();
    ECard.showScreen("s-login");
    document.getElementById("login-card-no").focus();
  }

  document.getElementById("login-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var cardNo = document.getElementById("login-card-no").value.replace(/\s+/g, "");
    var pinEl = document.getElementById("login-pin");
    var pin = pinEl.value.trim();
    var msg = document.getElementById("login-msg");
    if (!/^[0-9]{6}$/.test(pin)) { msg.textContent = t("pin.pin_format"); return; }
    pinEl.value = "";
    ECard.api("POST", "/api/v1/cards/login", { json: { card_no: cardNo, pin: pin } }).then(function (res) {
      if (!res.ok) {
        var code = res.body.error;
        msg.textContent = code === "pin_locked" || code === "pin_wait" ? t("pin." + code)
          : code === "card_not_active" ? t("card.login_replaced")
          : code === "network" ? t("common.network") : t("card.login_failed");
        return;
      }
      msg.textContent = "";
      ECard.cardStore.set(res.body.card);
      status = res.body.status || "active";
      showCard(pin);
    });
  });

  // --- report of loss ------------------------------------------------------------------------

  var lostForm = document.getElementById("lost-form");
  document.getElementById("lost-open").addEventListener("click", function () {
    lostForm.hidden = false;
    document.getElementById("lost-open").hidden = true;
    document.getElementById("lost-pin").focus();
  });
  lostForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var pinEl = document.getElementById("lost-pin");
    var pin = pinEl.value.trim();
    pinEl.value = "";
    var err = document.getElementById("lost-err");
    if (!/^[0-9]{6}$/.test(pin)) { err.textContent = t("pin.pin_format"); return; }
    ECard.api("POST", "/api/v1/cards/suspend", { bearer: ECard.cardStore.get(), json: { pin: pin } })
      .then(function (res) {
        if (!res.ok) { err.textContent = ECard.errorText(res.body, "pin."); return; }
        err.textContent = "";
        lostForm.hidden = true;
        setStatus("suspended");
        renderResult();
        var box = document.getElementById("lost-result");
        box.scrollIntoView({ block: "start" });
        box.focus({ preventScroll: true });
        loadOverview();
      });
  });

  // No PIN (forgotten, or a wait after wrong PINs)? A face check reports the loss or sets a new PIN.
  function startRecovery(err) {
    err.textContent = t("recover.starting");
    ECard.api("POST", "/api/v1/cards/recovery", { bearer: ECard.cardStore.get() }).then(function (res) {
      if (!res.ok) { err.textContent = ECard.errorText(res.body, "pin."); return; }
      location.assign(res.body.enroll_url);
    });
  }
  document.getElementById("recover-open").addEventListener("click", function () {
    startRecovery(document.getElementById("lost-err"));
  });
  document.getElementById("next-recover").addEventListener("click", function (ev) {
    ev.preventDefault();
    startRecovery(document.getElementById("lost-msg"));
  });

  // Removing the card from this phone is asked first: it cannot be undone without the number.
  function askForget() {
    document.getElementById("forget-warn").textContent =
      t("card.forget_ask", { no: grouped(cardNo()) });
  }
  document.getElementById("forget").addEventListener("click", function () {
    askForget();
    document.getElementById("forget").hidden = true;
    document.getElementById("forget-ask").hidden = false;
    document.getElementById("forget-no").focus();
  });
  function closeForget() {
    document.getElementById("forget-ask").hidden = true;
    document.getElementById("forget").hidden = false;
  }
  document.getElementById("forget-no").addEventListener("click", function () {
    closeForget();
    document.getElementById("forget").focus();
  });
  document.getElementById("forget-yes").addEventListener("click", function () {
    closeForget();
    ECard.cardStore.clear();
    showLogin();
  });

  if (ECard.cardStore.get()) showCard(null);
  else showLogin();
})();
