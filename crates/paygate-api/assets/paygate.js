/*! paygate.js — the paygate browser SDK. Plain ES2017, no dependencies, no build step.
 *
 *   <script src="https://YOUR-GATEWAY/sdk/paygate.js"></script>
 *   const pg = PayGate("test_ck_…");
 *   pg.requestPayment("카드", {amount: 15000, orderId: "order-0001", orderName: "T-shirt",
 *                      successUrl: "https://shop.example/success", failUrl: "https://shop.example/fail"});
 *
 * Toss Payments' v1 SDK calls work unchanged: the same script is served at /v1/payment (Toss's script path),
 * `TossPayments(clientKey)` is an alias of `PayGate(clientKey)`, and `requestPayment(method, params)` takes
 * Toss's method names (`카드`, `가상계좌`, `계좌이체`, or `CARD`, `VIRTUAL_ACCOUNT`, `TRANSFER`) and parameters. paygate's own options come last:
 * `requestPayment("카드", params, {mode: "popup"})`. The older one-argument form `requestPayment(params)` still works.
 *
 * The SDK only starts a payment with the merchant's client key and sends the buyer to paygate's hosted page.
 * It never sees card data: the buyer types the card on paygate's page. Confirming the payment
 * (POST /v1/payments/confirm) is the merchant server's job, with its secret key.
 */
(function (global) {
  "use strict";

  var VERSION = "0.1.0";
  // Captured now: document.currentScript is only set while the script runs for the first time.
  var SCRIPT = typeof document !== "undefined" ? document.currentScript : null;
  var POPUP_POLL_MS = 250;
  var POPUP_WAIT_MS_MAX = 40 * 60 * 1000; // longer than a READY payment lives (30 min), so the gateway decides
  var POPUP_WIDTH = 480, POPUP_HEIGHT = 760; // the hosted page is laid out for phones, so this fits it
  var RETRY_COUNT_MAX = 5, RETRY_DELAY_MS = 200;
  var CARD_METHODS = ["카드", "CARD"]; // Toss's spellings of the card method (billing keys are for cards)
  // Toss's spellings of the methods paygate's window offers, to the one the gateway is sent.
  var METHODS = { "카드": "카드", "CARD": "카드", "가상계좌": "가상계좌", "VIRTUAL_ACCOUNT": "가상계좌",
    "계좌이체": "계좌이체", "TRANSFER": "계좌이체" };
  var FORWARDED = ["customerName", "customerEmail", "customerMobilePhone", "taxFreeAmount", "taxExemptionAmount",
    "metadata"];

  /**
   * An error with paygate's stable `code` and a human `message`.
   * @param {string} code Toss's SDK codes where Toss has one ("INVALID_PARAMETER", "USER_CANCEL", "NETWORK_ERROR"),
   *        "POPUP_BLOCKED", "TIMEOUT", "INVALID_RESPONSE", or the gateway's own error code
   * @param {string} message
   * @param {object} [extra] more fields from paygate's error object (param, requestId, orderId…)
   */
  function PayGateError(code, message, extra) {
    var error = Object.assign(new Error(message), extra || {}, { code: code, message: message });
    error.name = "PayGateError";
    return error;
  }

  function defaultGatewayUrl() {
    if (SCRIPT && SCRIPT.src) return new URL(SCRIPT.src, global.location.href).origin;
    return global.location.origin;
  }

  function absolute(url, name) {
    if (typeof url !== "string" || url === "") throw PayGateError("INVALID_PARAMETER", name + " is required", { param: name });
    return new URL(url, global.location.href).href;
  }

  /** True when `href` is the page `base` names (same origin and path), whatever query it carries. */
  function landedOn(href, base) {
    var a = new URL(href), b = new URL(base);
    return a.origin === b.origin && a.pathname === b.pathname;
  }

  function queryOf(href) {
    var out = {};
    new URL(href).searchParams.forEach(function (value, key) { out[key] = value; });
    return out;
  }

  async function readError(response) {
    var body = null;
    try { body = await response.json(); } catch (ignored) { /* not JSON: fall through */ }
    if (body && body.code) return PayGateError(body.code, body.message || body.code, body);
    return PayGateError("HTTP_" + response.status, "paygate answered " + response.status);
  }

  function openPopup() {
    var left = Math.max(0, (global.screenX || 0) + ((global.outerWidth || POPUP_WIDTH) - POPUP_WIDTH) / 2);
    var top = Math.max(0, (global.screenY || 0) + ((global.outerHeight || POPUP_HEIGHT) - POPUP_HEIGHT) / 2);
    var features = "popup=yes,width=" + POPUP_WIDTH + ",height=" + POPUP_HEIGHT + ",left=" + Math.round(left) + ",top=" + Math.round(top);
    return global.open("about:blank", "paygate_checkout", features);
  }

  /** Resolves when the popup lands on successUrl, rejects on failUrl, on close, or after POPUP_WAIT_MS_MAX. */
  function watchPopup(popup, successUrl, failUrl, billing) {
    return new Promise(function (resolve, reject) {
      var started = Date.now();
      var timer = setInterval(function () {
        if (popup.closed) return finish(reject, PayGateError("USER_CANCEL", "the buyer closed the payment window"));
        if (Date.now() - started > POPUP_WAIT_MS_MAX) {
          popup.close();
          return finish(reject, PayGateError("TIMEOUT", "the payment window was open too long"));
        }
        var href;
        try { href = popup.location.href; } catch (crossOrigin) { return; } // still on paygate's pages
        if (!href || href === "about:blank") return;
        if (landedOn(href, successUrl)) {
          var q = queryOf(href);
          popup.close();
          return finish(resolve, billing ? { customerKey: q.customerKey, authKey: q.authKey }
            : { paymentKey: q.paymentKey, orderId: q.orderId, amount: Number(q.amount) });
        }
        if (landedOn(href, failUrl)) {
          var f = queryOf(href);
          popup.close();
          return finish(reject, PayGateError(f.code || "PAYMENT_FAILED", f.message || "the payment failed", { orderId: f.orderId }));
        }
      }, POPUP_POLL_MS);
      function finish(settle, value) { clearInterval(timer); settle(value); }
    });
  }

  /**
   * Creates an SDK instance for one merchant.
   * @param {string} clientKey the merchant's client key (`test_ck_…` or `live_ck_…`); never a secret key
   * @param {{gatewayUrl?: string}} [options] gatewayUrl defaults to the origin this script was loaded from
   * @returns {{requestPayment: Function, requestBillingAuth: Function, gatewayUrl: string}}
   */
  function PayGate(clientKey, options) {
    if (typeof clientKey !== "string" || !/^(test|live)_ck_/.test(clientKey)) {
      var hint = /_sk_/.test(String(clientKey)) ? "; never put a secret key in a web page" : "";
      throw PayGateError("INVALID_CLIENT_KEY", "PayGate() needs a client key (test_ck_… or live_ck_…)" + hint);
    }
    var gatewayUrl = ((options && options.gatewayUrl) || defaultGatewayUrl()).replace(/\/+$/, "");
    var inFlight = {}; // orderId → Promise: a second click while the first is running gets the same answer

    async function post(body, idempotencyKey) {
      try {
        return await fetch(gatewayUrl + "/v1/payments", {
          method: "POST", mode: "cors", credentials: "omit",
          // The same order always carries the same key, so a double click or a retry returns the same payment.
          headers: { "Authorization": "Basic " + btoa(clientKey + ":"), "Content-Type": "application/json", "Idempotency-Key": idempotencyKey },
          body: JSON.stringify(body),
        });
      } catch (networkError) {
        throw PayGateError("NETWORK_ERROR", "could not reach paygate at " + gatewayUrl + " (down, or not allowing this origin): " + networkError.message);
      }
    }

    async function createPayment(params) {
      var body = { method: params.method, amount: params.amount, orderId: params.orderId, orderName: params.orderName,
        successUrl: params.successUrl, failUrl: params.failUrl };
      // Toss's SDK parameters the gateway keeps; the window and card-selection ones (windowTarget, cardCompany,
      // flowMode, useCardPoint…) only shape Toss's own window and are not sent.
      FORWARDED.forEach(function (name) {
        if (params[name] !== undefined && params[name] !== null && params[name] !== "") body[name] = params[name];
      });
      for (var attempt = 1; ; attempt++) {
        var response = await post(body, "sdk-" + params.orderId);
        if (response.ok) break;
        var error = await readError(response);
        // The same order's first request is still running (another tab or click): wait for its stored answer.
        if (error.code !== "IDEMPOTENT_REQUEST_PROCESSING" || attempt >= RETRY_COUNT_MAX) throw error;
        await new Promise(function (resolve) { setTimeout(resolve, RETRY_DELAY_MS * attempt); });
      }
      var payment = await response.json();
      if (!payment.checkout || !payment.checkout.url) throw PayGateError("INVALID_RESPONSE", "paygate returned no checkout.url");
      return payment;
    }

    /**
     * Starts a card payment and sends the buyer to paygate's hosted page.
     * After paying, the buyer lands on `successUrl?paymentKey=…&orderId=…&amount=…` (or on
     * `failUrl?code=…&message=…&orderId=…`); your server must then confirm with its secret key.
     * @param {string} method `카드`, `가상계좌` or `계좌이체` (or `CARD`, `VIRTUAL_ACCOUNT`, `TRANSFER`: Toss's
     *        spellings). May be left out: `requestPayment(params, options)`.
     * @param {{amount: number, orderId: string, orderName: string, successUrl: string, failUrl: string,
     *          customerName?: string, customerEmail?: string, customerMobilePhone?: string,
     *          taxFreeAmount?: number, taxExemptionAmount?: number, metadata?: object,
     *          windowTarget?: "self"|"iframe"}} params Toss's v1 parameters; `windowTarget` and Toss's
     *          window options are accepted and ignored (paygate's page always opens in the window or a popup)
     * @param {{mode?: "redirect"|"popup"}} [options] redirect (default) leaves the page; popup keeps it open
     * @returns {Promise<object>} redirect: the READY payment (the page is leaving); popup: `{paymentKey, orderId,
     *          amount}` once the popup reaches successUrl. Rejects with a PayGateError `{code, message}`.
     */
    function requestPayment(method, params, options) {
      if (typeof method !== "string") { // the one-argument form: (params, options)
        options = params;
        params = method;
        method = params && typeof params === "object" && params.method !== undefined ? params.method : "카드";
      }
      if (!Object.prototype.hasOwnProperty.call(METHODS, method)) {
        return Promise.reject(PayGateError("INVALID_PARAMETER", "paygate's payment window offers 카드, 가상계좌 and 계좌이체 (or CARD, VIRTUAL_ACCOUNT, TRANSFER), not " + method, { param: "method" }));
      }
      if (params && typeof params === "object") params = Object.assign({}, params, { method: METHODS[method] });
      var key = params && params.orderId;
      if (key && inFlight[key]) return inFlight[key];
      var mode = (options && options.mode) || "redirect";
      // The popup must open inside the click handler, before any await, or the browser blocks it.
      var popup = mode === "popup" ? openPopup() : null;
      var pending = start(params, mode, popup).then(null, function (error) {
        if (popup && !popup.closed) popup.close();
        throw error;
      });
      if (!key) return pending;
      inFlight[key] = pending;
      var forget = function () { delete inFlight[key]; };
      pending.then(forget, forget);
      return pending;
    }

    async function start(params, mode, popup) {
      if (!params || typeof params !== "object") throw PayGateError("INVALID_PARAMETER", "requestPayment needs its parameters");
      if (mode !== "redirect" && mode !== "popup") throw PayGateError("INVALID_PARAMETER", "mode is redirect or popup", { param: "mode" });
      if (!Number.isSafeInteger(params.amount) || params.amount <= 0) throw PayGateError("INVALID_PARAMETER", "amount must be a positive integer", { param: "amount" });
      if (typeof params.orderId !== "string" || params.orderId === "") throw PayGateError("INVALID_PARAMETER", "orderId is required", { param: "orderId" });
      if (mode === "popup" && !popup) throw PayGateError("POPUP_BLOCKED", "the browser blocked the payment window; call requestPayment from a click");
      var request = Object.assign({}, params, {
        successUrl: absolute(params.successUrl, "successUrl"),
        failUrl: absolute(params.failUrl, "failUrl"),
      });
      var payment = await createPayment(request);
      if (mode === "redirect") {
        global.location.assign(payment.checkout.url);
        return payment;
      }
      popup.location.href = payment.checkout.url;
      popup.focus();
      return watchPopup(popup, request.successUrl, request.failUrl);
    }

    /**
     * Registers the buyer's card for a billing key (Toss's `requestBillingAuth`): the buyer types the card on
     * paygate's page and answers the issuer's code, then lands on `successUrl?customerKey=…&authKey=…` (or on
     * `failUrl?code=…&message=…`). Your server then exchanges the authKey with its secret key:
     * `POST /v1/billing/authorizations/issue {authKey, customerKey}`.
     * @param {string} method `카드` or `CARD`
     * @param {{customerKey: string, successUrl: string, failUrl: string, customerName?: string,
     *          customerEmail?: string}} params
     * @param {{mode?: "redirect"|"popup"}} [options] popup resolves with `{customerKey, authKey}`
     */
    function requestBillingAuth(method, params, options) {
      if (CARD_METHODS.indexOf(method) < 0) {
        return Promise.reject(PayGateError("INVALID_PARAMETER", "billing keys are for cards (카드 or CARD), not " + method, { param: "method" }));
      }
      var mode = (options && options.mode) || "redirect";
      var popup = mode === "popup" ? openPopup() : null;
      return startBillingAuth(params, mode, popup).then(null, function (error) {
        if (popup && !popup.closed) popup.close();
        throw error;
      });
    }

    async function startBillingAuth(params, mode, popup) {
      if (!params || typeof params !== "object") throw PayGateError("INVALID_PARAMETER", "requestBillingAuth needs its parameters");
      if (mode !== "redirect" && mode !== "popup") throw PayGateError("INVALID_PARAMETER", "mode is redirect or popup", { param: "mode" });
      if (typeof params.customerKey !== "string" || params.customerKey === "") throw PayGateError("INVALID_PARAMETER", "customerKey is required", { param: "customerKey" });
      if (mode === "popup" && !popup) throw PayGateError("POPUP_BLOCKED", "the browser blocked the registration window; call requestBillingAuth from a click");
      var body = { customerKey: params.customerKey, successUrl: absolute(params.successUrl, "successUrl"), failUrl: absolute(params.failUrl, "failUrl") };
      if (params.customerName) body.customerName = params.customerName;
      if (params.customerEmail) body.customerEmail = params.customerEmail;
      var response;
      try {
        response = await fetch(gatewayUrl + "/v1/billing/sessions", {
          method: "POST", mode: "cors", credentials: "omit",
          headers: { "Authorization": "Basic " + btoa(clientKey + ":"), "Content-Type": "application/json" },
          body: JSON.stringify(body),
        });
      } catch (networkError) {
        throw PayGateError("NETWORK_ERROR", "could not reach paygate at " + gatewayUrl + " (down, or not allowing this origin): " + networkError.message);
      }
      if (!response.ok) throw await readError(response);
      var session = await response.json();
      if (!session.checkout || !session.checkout.url) throw PayGateError("INVALID_RESPONSE", "paygate returned no checkout.url");
      if (mode === "redirect") {
        global.location.assign(session.checkout.url);
        return session;
      }
      popup.location.href = session.checkout.url;
      popup.focus();
      var landed = await watchPopup(popup, body.successUrl, body.failUrl, true);
      return landed;
    }

    return Object.freeze({ requestPayment: requestPayment, requestBillingAuth: requestBillingAuth, gatewayUrl: gatewayUrl });
  }

  PayGate.version = VERSION;
  PayGate.PayGateError = PayGateError;
  global.PayGate = PayGate;
  // Toss's constructor name, so a page written for Toss's v1 SDK runs once its script src points here.
  // A page that also loads Toss's own SDK keeps Toss's.
  if (typeof global.TossPayments === "undefined") global.TossPayments = PayGate;
})(typeof window !== "undefined" ? window : globalThis);
