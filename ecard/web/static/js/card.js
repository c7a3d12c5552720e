/* Back to the card: card number + PIN (or the card already saved on this phone), the card, its
 * refreshing QR code, report of loss and the application's timeline. The card token is kept in
 * this device's localStorage only. */
"use strict";

(function () {
  var t = ECard.t;
  var qr = new ECard.QrRefresher(function () { return ECard.cardStore.get(); });
  var status = "active";
  qr.onStatus = function (s) { setStatus(s); };

  function setStatus(s) {
    status = s || "active";
    ECard.renderCard(ECard.cardStore.get(), status);
    var active = status === "active";
    document.getElementById("lost-open").hidden = !active;
    if (!active) {
      qr.stop();
      document.getElementById("qr-img").hidden = true;
      document.getElementById("qr-countdown").textContent = "";
      document.getElementById("qr-pin-form").hidden = true;
      document.getElementById("qr-msg").textContent = t("card.qr_suspended");
    }
  }

  function eventText(ev) {
    var key = "event." + ev.action;
    var text = ECard.has(key) ? t(key) : ev.action;
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
      var when = document.createElement("time");
      when.dateTime = ev.at;
      when.textContent = new Date(ev.at).toLocaleString(ECard.lang());
      li.appendChild(when);
      li.appendChild(document.createTextNode(eventText(ev)));
      list.appendChild(li);
    });
    document.getElementById("timeline-panel").hidden = !events.length;
  }

  var lostDone = false;
  ECard.onLanguage(function () {
    if (!ECard.cardStore.get()) return;
    setStatus(status);
    renderTimeline();
    if (lostDone) document.getElementById("lost-msg").textContent = t("card.reported");
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
        lostDone = true;
        document.getElementById("lost-msg").textContent = t("card.reported");
        setStatus("suspended");
        loadOverview();
      });
  });

  // No PIN (forgotten, or a wait after wrong PINs)? A face check reports the loss or sets a new PIN.
  document.getElementById("recover-open").addEventListener("click", function () {
    var err = document.getElementById("lost-err");
    err.textContent = t("recover.starting");
    ECard.api("POST", "/api/v1/cards/recovery", { bearer: ECard.cardStore.get() }).then(function (res) {
      if (!res.ok) { err.textContent = ECard.errorText(res.body, "pin."); return; }
      location.assign(res.body.enroll_url);
    });
  });

  document.getElementById("forget").addEventListener("click", function () {
    ECard.cardStore.clear();
    showLogin();
  });

  if (ECard.cardStore.get()) showCard(null);
  else showLogin();
})();
