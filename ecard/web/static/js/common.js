/* ecard pages: shared helpers (i18n, large text, API calls, PIN pad, card and QR display).
 * Plain ES2017, no build step, nothing loaded from the network but this origin. */
"use strict";

var ECard = (function () {
  var messages = JSON.parse(document.getElementById("i18n-data").textContent || "{}");
  var lang = document.documentElement.lang || "en";

  /** The message for `key` in the current language, with {name} placeholders filled. */
  function t(key, vars) {
    var text = Object.prototype.hasOwnProperty.call(messages, key) ? messages[key] : key;
    if (vars) {
      Object.keys(vars).forEach(function (k) { text = text.split("{" + k + "}").join(String(vars[k])); });
    }
    return text;
  }

  function has(key) { return Object.prototype.hasOwnProperty.call(messages, key); }

  /** Re-translate every element carrying data-i18n / data-i18n-aria-label. */
  function applyMessages(root) {
    (root || document).querySelectorAll("[data-i18n]").forEach(function (el) {
      el.textContent = t(el.getAttribute("data-i18n"));
    });
    (root || document).querySelectorAll("[data-i18n-aria-label]").forEach(function (el) {
      el.setAttribute("aria-label", t(el.getAttribute("data-i18n-aria-label")));
    });
    (root || document).querySelectorAll("[data-i18n-alt]").forEach(function (el) {
      el.setAttribute("alt", t(el.getAttribute("data-i18n-alt")));
    });
  }

  var langListeners = [];
  function onLanguage(fn) { langListeners.push(fn); }

  function setCookie(name, value) {
    var secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = name + "=" + value + "; Path=/; Max-Age=31536000; SameSite=Strict" + secure;
  }

  function switchLanguage() {
    var next = lang === "zh-CN" ? "en" : "zh-CN";
    return fetch("/static/i18n/" + next + ".json", { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (dict) {
        messages = dict;
        lang = next;
        document.documentElement.lang = next;
        document.getElementById("lang-switch").setAttribute("lang", next === "en" ? "zh-CN" : "en");
        setCookie("ecard_lang", next);
        applyMessages();
        langListeners.forEach(function (fn) { fn(next); });
      });
  }

  function toggleLarge() {
    var on = !document.documentElement.classList.contains("large");
    document.documentElement.classList.toggle("large", on);
    document.getElementById("large-text").setAttribute("aria-pressed", on ? "true" : "false");
    setCookie("ecard_large", on ? "1" : "0");
  }

  document.getElementById("lang-switch").addEventListener("click", switchLanguage);
  document.getElementById("large-text").addEventListener("click", toggleLarge);

  /** Show one screen (a <section>) of a page, hide its siblings, move focus to its heading. */
  function showScreen(id) {
    var target = document.getElementById(id);
    Array.prototype.forEach.call(target.parentNode.children, function (el) {
      if (el.tagName === "SECTION") el.hidden = el !== target;
    });
    var heading = target.querySelector("h1, h2");
    if (heading) {
      if (!heading.hasAttribute("tabindex")) heading.setAttribute("tabindex", "-1");
      heading.focus({ preventScroll: true });
    }
    window.scrollTo(0, 0);
  }

  /**
   * Call the JSON API. Resolves to {ok, status, body}; network failures resolve with status 0
   * and error "network" so that every caller shows a plain message instead of throwing.
   */
  function api(method, path, opts) {
    opts = opts || {};
    var headers = { Accept: "application/json" };
    if (opts.bearer) headers.Authorization = "Bearer " + opts.bearer;
    if (opts.csrf) headers["X-CSRF-Token"] = opts.csrf;
    var body;
    if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.json);
    } else if (opts.form) {
      body = opts.form;
    }
    return fetch(path, {
      method: method, headers: headers, body: body, credentials: "same-origin",
      cache: "no-store", referrerPolicy: "no-referrer"
    }).then(function (r) {
      return r.text().then(function (text) {
        var data = {};
        try { data = text ? JSON.parse(text) : {}; } catch (e) { data = { error: "bad_response" }; }
        return { ok: r.ok, status: r.status, body: data };
      });
    }, function () {
      return { ok: false, status: 0, body: { error: "network", message: t("common.network") } };
    });
  }

  /** The payload of a compact JWS, decoded for display only (the server verifies it). */
  function jwtPayload(token) {
    try {
      var part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      while (part.length % 4) part += "=";
      var bytes = Uint8Array.from(atob(part), function (c) { return c.charCodeAt(0); });
      return JSON.parse(new TextDecoder().decode(bytes));
    } catch (e) {
      return null;
    }
  }

  var CARD_KEY = "ecard.card";
  /** The citizen's card token lives only on this device (localStorage), never in a server session. */
  var cardStore = {
    get: function () { try { return localStorage.getItem(CARD_KEY); } catch (e) { return null; } },
    set: function (token) { try { localStorage.setItem(CARD_KEY, token); } catch (e) { /* private mode */ } },
    clear: function () { try { localStorage.removeItem(CARD_KEY); } catch (e) { /* ignore */ } }
  };

  function statusLabel(status) {
    return has("card.status." + status) ? t("card.status." + status) : t("card.status.unknown");
  }

  /** Fill the card block (_card.html) from the card token's claims and a status word. */
  function renderCard(token, status) {
    var c = jwtPayload(token) || {};
    document.getElementById("card-name").textContent = c.name || "";
    document.getElementById("card-id").textContent = c.id_number_masked || "";
    document.getElementById("card-no").textContent = c.card_no || "";
    var st = document.getElementById("card-status");
    st.textContent = statusLabel(status || "active");
    st.setAttribute("data-status", status || "active");
    document.getElementById("ecard").classList.toggle("suspended", !!status && status !== "active");
    return c;
  }

  /** The message for an API error: a known code in our dictionary, else the server's message. */
  function errorText(body, prefix) {
    var code = (body && body.error) || "unknown";
    if (prefix && has(prefix + code)) return t(prefix + code);
    if (code === "network") return t("common.network");
    return (body && body.message) || t("common.error");
  }

  /**
   * The card's one-time QR code, refreshed before it expires. The PIN is needed for every new
   * code: it is kept in this closure only (never stored) and forgotten after PIN_TTL_MS, after
   * which the citizen types it again.
   */
  var PIN_TTL_MS = 5 * 60 * 1000;
  function QrRefresher(getToken) {
    this.getToken = getToken;
    this.pin = null;
    this.pinSince = 0;
    this.timer = null;
    this.tick = null;
    var self = this;
    this.form = document.getElementById("qr-pin-form");
    this.input = document.getElementById("qr-pin");
    this.img = document.getElementById("qr-img");
    this.countdown = document.getElementById("qr-countdown");
    this.msg = document.getElementById("qr-msg");
    this.form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var pin = self.input.value.trim();
      self.input.value = "";
      if (!/^[0-9]{6}$/.test(pin)) { self.msg.textContent = t("pin.pin_format"); return; }
      self.start(pin);
    });
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible" && self.pin) self.refresh();
    });
  }
  QrRefresher.prototype.askPin = function (message) {
    this.stop();
    this.img.hidden = true;
    this.countdown.textContent = "";
    this.msg.textContent = message || "";
    this.form.hidden = false;
  };
  QrRefresher.prototype.start = function (pin) {
    this.pin = pin;
    this.pinSince = Date.now();
    this.form.hidden = true;
    this.msg.textContent = "";
    return this.refresh();
  };
  QrRefresher.prototype.stop = function () {
    clearTimeout(this.timer);
    clearInterval(this.tick);
    this.pin = null;
  };
  QrRefresher.prototype.refresh = function () {
    var self = this;
    clearTimeout(this.timer);
    clearInterval(this.tick);
    if (!this.pin) return Promise.resolve(false);
    if (Date.now() - this.pinSince > PIN_TTL_MS) {
      this.askPin(t("card.qr_paused"));
      return Promise.resolve(false);
    }
    return api("POST", "/api/v1/cards/qr", { bearer: this.getToken(), json: { pin: this.pin } })
      .then(function (res) {
        if (!res.ok) {
          var code = res.body.error || "";
          if (code === "card_not_active" || code === "card_suspended" || code === "card_revoked") {
            self.stop();
            self.img.hidden = true;
            self.countdown.textContent = "";
            self.msg.textContent = t("card.qr_suspended");
            if (self.onStatus) self.onStatus("suspended");
            return false;
          }
          self.askPin(errorText(res.body, "pin."));
          return false;
        }
        self.img.src = "data:image/png;base64," + res.body.qr_png;
        self.img.alt = t("card.qr_heading");
        self.img.setAttribute("data-qr-token", res.body.qr_token);
        self.img.hidden = false;
        var expires = Date.parse(res.body.expires_at);
        if (isNaN(expires)) expires = Date.now() + 30000;
        // Renew a few seconds before the code expires, so the desk never sees a stale one.
        var renewAt = expires - 8000;
        var show = function () {
          var s = Math.max(0, Math.round((renewAt - Date.now()) / 1000));
          self.countdown.textContent = t("card.qr_valid", { s: s });
        };
        show();
        self.tick = setInterval(show, 1000);
        self.timer = setTimeout(function () { self.refresh(); }, Math.max(2000, renewAt - Date.now()));
        return true;
      });
  };

  /** The 6-digit PIN pad (_pinpad.html): on-screen keys plus the keyboard; calls onDone(pin). */
  function PinPad(onDone) {
    var self = this;
    this.value = "";
    this.onDone = onDone;
    this.input = document.getElementById("pin-input");
    this.dots = document.getElementById("pin-dots");
    document.querySelectorAll("#pinpad .pad button").forEach(function (b) {
      b.addEventListener("click", function () {
        if (b.getAttribute("data-action") === "delete") self.value = self.value.slice(0, -1);
        else if (self.value.length < 6) self.value += b.getAttribute("data-digit");
        self.sync();
      });
    });
    document.getElementById("pinpad").addEventListener("submit", function (ev) { ev.preventDefault(); });
    this.input.addEventListener("input", function () {
      self.value = self.input.value.replace(/[^0-9]/g, "").slice(0, 6);
      self.sync();
    });
    this.sync();
  }
  PinPad.prototype.sync = function () {
    var n = this.value.length;
    this.input.value = this.value;
    Array.prototype.forEach.call(this.dots.children, function (dot, i) { dot.classList.toggle("on", i < n); });
    this.dots.setAttribute("aria-label", t("pin.digits_entered", { n: n }));
    if (n === 6) {
      // Hand the PIN over at once and start a fresh entry: keys pressed right after the sixth
      // digit belong to the next entry, in order.
      var pin = this.value;
      this.value = "";
      this.sync();
      this.onDone(pin);
    }
  };
  PinPad.prototype.reset = function () { this.value = ""; this.sync(); };

  return {
    t: t, has: has, api: api, showScreen: showScreen, jwtPayload: jwtPayload, cardStore: cardStore,
    renderCard: renderCard, statusLabel: statusLabel, errorText: errorText, onLanguage: onLanguage,
    QrRefresher: QrRefresher, PinPad: PinPad, lang: function () { return lang; }
  };
})();
