// End-to-end tests of hosted checkout, the browser SDK and receipts, in a real browser (Debian chromium driven by
// playwright-core; no browser is ever downloaded). Start it through run.sh, which starts the gateway and the example
// shop and passes: PAYGATE_URL, PAYGATE_SECRET_KEY, SHOP_URL, and optionally SCREENSHOT_DIR, CHROMIUM, ONLY (a
// substring of scenario names to run).
// Each scenario drives the browser like a buyer and then checks the outcome twice: in the DOM, and through the
// gateway's API with the merchant's secret key.
import { chromium } from "playwright-core";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const GATEWAY = need("PAYGATE_URL").replace(/\/+$/, "");
const SECRET_KEY = need("PAYGATE_SECRET_KEY");
const SHOP = need("SHOP_URL").replace(/\/+$/, "");
const SCREENSHOTS = process.env.SCREENSHOT_DIR ?? fileURLToPath(new URL("./screenshots/", import.meta.url));
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ONLY = process.env.ONLY ?? "";
const STEP_TIMEOUT_MS = 15_000;
const NOTIFICATION_WAIT_MS = 10_000;
const TAB_PRESSES_MAX = 40;
const EXP_MONTH = "12";
const EXP_YEAR = String((new Date().getFullYear() + 3) % 100).padStart(2, "0");
const DESKTOP = { width: 1280, height: 800 };
const MOBILE = { width: 390, height: 844 };
const CARD = { approvedA: "4330000000000003", declined: "4330000000000011", challenge: "4330000000000078",
  approvedB: "5400000000000005", approvedC: "9400000000000007" };

function need(name) {
  const value = process.env[name];
  if (!value) { console.error(`e2e.mjs: set ${name} (run.sh does)`); process.exit(2); }
  return value;
}

// ---- what every page is held to ----

const notes = []; // what the gateway did where the contract allows several behaviours
function note(text) { notes.push(`[${currentScenario}] ${text}`); }

const hygiene = { consoleErrors: [], pageErrors: [], offHostRequests: [], httpErrors: [], auditedPages: [], warnings: [],
  expectedHttpErrors: new Set() }; // URLs a scenario deliberately loads with a 4xx answer (Chrome logs those)
let currentScenario = "";

function watch(context) {
  context.on("request", (request) => {
    const url = new URL(request.url());
    const local = url.protocol === "data:" || url.protocol === "blob:" || url.protocol === "about:" || url.hostname === "127.0.0.1";
    if (!local) hygiene.offHostRequests.push(`[${currentScenario}] ${request.method()} ${request.url()}`);
  });
  context.on("response", (response) => {
    if (response.status() >= 400 && !hygiene.expectedHttpErrors.has(response.url())) {
      hygiene.httpErrors.push(`[${currentScenario}] ${response.request().method()} ${response.url()} → ${response.status()}`);
    }
  });
  context.on("console", (message) => {
    const expected = message.text().startsWith("Failed to load resource") && hygiene.expectedHttpErrors.has(message.location().url);
    if (message.type() === "error" && !expected) {
      hygiene.consoleErrors.push(`[${currentScenario}] ${message.page()?.url() ?? "?"}: ${message.text()}`);
    }
  });
  context.on("weberror", (error) => hygiene.pageErrors.push(`[${currentScenario}] ${error.page()?.url() ?? "?"}: ${error.error().message}`));
}

/** Checks a paygate page: every visible form control is labelled, and the document says its language. */
async function audit(page, what) {
  assert(page.url().startsWith(GATEWAY), `${what}: expected a paygate page, at ${page.url()}`);
  const result = await page.evaluate(() => {
    const controls = [...document.querySelectorAll("input:not([type=hidden]), select, textarea")];
    const unlabelled = controls.filter((el) => {
      const named = el.labels.length > 0 || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby");
      const labelText = [...el.labels].map((l) => l.textContent.trim()).join("") || el.getAttribute("aria-label") || "";
      return !named || labelText === "" && !el.getAttribute("aria-labelledby");
    }).map((el) => el.outerHTML.slice(0, 120));
    const alerts = [...document.querySelectorAll("[role=alert]")].map((el) => el.textContent.trim()).filter(Boolean);
    return { controls: controls.length, unlabelled, lang: document.documentElement.lang, title: document.title, alerts };
  });
  hygiene.auditedPages.push(`${what}: ${page.url().replace(GATEWAY, "")} (${result.controls} controls, lang=${result.lang || "-"})`);
  assert(result.unlabelled.length === 0, `${what}: form controls without a label: ${result.unlabelled.join(", ")}`);
  if (!result.lang) hygiene.warnings.push(`${what}: <html> has no lang attribute`);
  if (!result.title) hygiene.warnings.push(`${what}: the page has no <title>`);
  for (const alert of result.alerts) {
    if (result.lang.startsWith("ko") && !/[\uac00-\ud7a3]/.test(alert)) hygiene.warnings.push(`${what}: a Korean page shows an English message: "${alert}"`);
  }
}

// ---- small helpers ----

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

function equal(actual, expected, what) {
  assert(actual === expected, `${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

async function api(method, path, body) {
  const headers = { Authorization: "Basic " + Buffer.from(SECRET_KEY + ":").toString("base64") };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(GATEWAY + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: response.status, json, text };
}

async function paymentByOrder(orderId) {
  const response = await api("GET", `/v1/payments/orders/${encodeURIComponent(orderId)}`);
  equal(response.status, 200, `GET /v1/payments/orders/${orderId} status (${response.text.slice(0, 200)})`);
  return response.json;
}

/** The approvals paygate recorded for one payment, from GET /v1/transactions (all pages, bounded). */
async function approvalsOf(paymentKey) {
  const day = (offset) => new Date(Date.now() + 9 * 3600_000 + offset * 86400_000).toISOString().slice(0, 10); // KST
  const found = [];
  let after = "";
  for (let pageCount = 0; pageCount < 100; pageCount++) {
    const query = `startDate=${day(-1)}&endDate=${day(1)}&limit=100${after ? `&startingAfter=${after}` : ""}`;
    const response = await api("GET", `/v1/transactions?${query}`);
    equal(response.status, 200, `GET /v1/transactions (${response.text.slice(0, 200)})`);
    const rows = Array.isArray(response.json) ? response.json : response.json.data ?? response.json.transactions ?? [];
    found.push(...rows.filter((t) => t.paymentKey === paymentKey && (t.kind ?? "APPROVAL") === "APPROVAL"));
    if (rows.length < 100) return found;
    after = rows[rows.length - 1].transactionKey;
  }
  throw new Error("GET /v1/transactions: more than 100 pages");
}

async function shot(page, name, viewport) {
  if (viewport) await page.setViewportSize(viewport);
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
  if (viewport) await page.setViewportSize(DESKTOP);
}

const onGateway = (prefix) => (url) => url.href.startsWith(GATEWAY + prefix);
const onShop = (path) => (url) => url.href.startsWith(SHOP + path);

/** Opens the shop and returns the orderId the hosted-checkout form carries. */
async function openShop(page) {
  await page.goto(SHOP + "/");
  return page.inputValue("#checkout-form input[name=orderId]");
}

/** Shop page → submit the signed form → paygate's card page. */
async function toCardPage(page) {
  const orderId = await openShop(page);
  const [entry] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${GATEWAY}/checkout` && r.request().method() === "POST"),
    page.click("#form-pay"),
  ]);
  equal(entry.status(), 303, "POST /checkout answers 303 to the hosted page");
  await page.waitForURL(onGateway("/checkout/"));
  await page.waitForSelector("#card-form");
  await audit(page, "card page");
  return orderId;
}

async function fillCard(page, number) {
  await page.fill("#card-number", number);
  await page.fill("#exp-month", EXP_MONTH);
  await page.fill("#exp-year", EXP_YEAR);
}

/** Presses Tab until `selector` has the focus: proof that it is reachable by keyboard. */
async function tabTo(page, selector) {
  for (let i = 0; i < TAB_PRESSES_MAX; i++) {
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) return;
    await page.keyboard.press("Tab");
  }
  throw new Error(`${selector} cannot be reached with Tab (${TAB_PRESSES_MAX} presses)`);
}

async function payAndReturn(page, card) {
  await fillCard(page, card);
  await Promise.all([page.waitForURL(onShop("/return")), page.click("#pay-button")]);
}

/** The shop's result page: its status, and for the form flow (`signed`) that it verified paygate's signature. */
async function expectResult(page, { status, signed }) {
  await page.waitForSelector("#status");
  equal(await page.textContent("#status"), status, "the shop's result status");
  if (signed) equal(await page.getAttribute("#verified", "data-verified"), "true", "the shop verified the signature");
}

/** Throws with the shop's SDK error text (e.g. a CORS failure) as soon as one shows, instead of timing out. */
async function sdkFailure(page) {
  const handle = await page.waitForFunction(() => document.querySelector("#sdk-error")?.textContent.trim() || null, null,
    { timeout: STEP_TIMEOUT_MS * 2 });
  throw new Error(`the SDK reported: ${await handle.jsonValue()}`);
}

/** Clicks an SDK button in redirect mode and waits for paygate's card page (or the SDK's error). */
async function sdkRedirect(page, clickCount = 1) {
  await page.goto(SHOP + "/");
  const orderId = (await page.textContent("#sdk-order-id")).trim();
  await Promise.race([
    Promise.all([page.waitForURL(onGateway("/checkout/")), page.click("#sdk-redirect", { clickCount, delay: 0 })]),
    sdkFailure(page),
  ]);
  await page.waitForSelector("#card-form");
  return orderId;
}

/** Clicks the popup button and returns the popup on paygate's card page (or throws the SDK's error). */
async function sdkPopup(page) {
  await page.goto(SHOP + "/");
  const orderId = (await page.textContent("#sdk-order-id")).trim();
  const [popup] = await Promise.all([page.waitForEvent("popup"), page.click("#sdk-popup")]);
  // On an error the SDK closes the popup itself: then the shop's error text says why.
  await Promise.race([popup.waitForURL(onGateway("/checkout/")).catch(() => sdkFailure(page)), sdkFailure(page)]);
  await popup.waitForSelector("#card-form");
  return { orderId, popup };
}

// ---- scenarios ----

const shared = {}; // what one scenario leaves for a later one (the receipt of scenario 1)

const scenarios = [
  ["1 form POST → approved card (keyboard only) → signed return + notification", async (page) => {
    const orderId = await toCardPage(page);
    assert(/15,000/.test(await page.textContent("body")), "the card page shows the amount 15,000");
    const hints = await page.evaluate(() => ({
      autocomplete: document.querySelector("#card-number").getAttribute("autocomplete"),
      inputmode: document.querySelector("#card-number").getAttribute("inputmode"),
    }));
    if (hints.autocomplete !== "cc-number") hygiene.warnings.push(`#card-number autocomplete="${hints.autocomplete}", cc-number lets browsers fill it`);
    if (hints.inputmode !== "numeric") hygiene.warnings.push(`#card-number inputmode="${hints.inputmode}", numeric brings up the digit keyboard on phones`);
    await shot(page, "hosted-ko-desktop");
    await shot(page, "hosted-ko-mobile", MOBILE);
    const checkoutUrl = page.url().split("?")[0];
    await page.goto(checkoutUrl + "?lang=en");
    await page.waitForSelector("#card-form");
    await audit(page, "card page (en)");
    const lang = await page.evaluate(() => document.documentElement.lang);
    if (!lang.startsWith("en")) hygiene.warnings.push(`?lang=en: <html lang="${lang}">, expected en`);
    await shot(page, "hosted-en-desktop");
    await shot(page, "hosted-en-mobile", MOBILE);
    await page.goto(checkoutUrl);
    await page.waitForSelector("#card-form");
    // Keyboard only: Tab to each field, type, and press Enter on the pay button.
    await page.evaluate(() => document.activeElement?.blur());
    await tabTo(page, "#card-number");
    await page.keyboard.type(CARD.approvedA);
    await tabTo(page, "#exp-month");
    await page.keyboard.type(EXP_MONTH);
    await tabTo(page, "#exp-year");
    await page.keyboard.type(EXP_YEAR);
    await tabTo(page, "#pay-button");
    await Promise.all([page.waitForURL(onShop("/return")), page.keyboard.press("Enter")]);
    await expectResult(page, { status: "DONE", signed: true });
    const query = Object.fromEntries(new URL(page.url()).searchParams);
    equal(query.status, "DONE", "returnUrl status");
    equal(query.orderId, orderId, "returnUrl orderId");
    equal(query.amount, "15000", "returnUrl amount");
    assert(/^[0-9a-f]{64}$/.test(query.signature ?? ""), `returnUrl signature is lowercase hex: ${query.signature}`);
    assert(await page.isVisible("#receipt"), "the shop shows a receipt link");
    const payment = await paymentByOrder(orderId);
    equal(payment.status, "DONE", "API status");
    equal(payment.paymentKey, query.paymentKey, "API paymentKey");
    equal(payment.totalAmount, 15000, "API totalAmount");
    assert(payment.receipt?.url, "API receipt.url");
    shared.receiptPayment = payment;
    const deadline = Date.now() + NOTIFICATION_WAIT_MS;
    let notification;
    while (!notification && Date.now() < deadline) {
      const all = await (await fetch(SHOP + "/notifications")).json();
      notification = all.find((n) => n.fields.orderId === orderId);
      if (!notification) await new Promise((r) => setTimeout(r, 200));
    }
    assert(notification, `no notification for ${orderId} within ${NOTIFICATION_WAIT_MS} ms`);
    equal(notification.fields.status, "DONE", "notification status");
    equal(notification.fields.paymentKey, payment.paymentKey, "notification paymentKey");
  }],

  ["1b hosted checkout without JavaScript → approved, signed return", async (page) => {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Emulation.setScriptExecutionDisabled", { value: true });
    const orderId = await toCardPage(page);
    await payAndReturn(page, CARD.approvedA);
    await expectResult(page, { status: "DONE", signed: true });
    equal((await paymentByOrder(orderId)).status, "DONE", "API status");
  }],

  ["2 challenge card → wrong OTP shows an error → right OTP approves", async (page) => {
    const orderId = await toCardPage(page);
    await fillCard(page, CARD.challenge);
    await page.click("#pay-button");
    await page.waitForSelector("#otp-form");
    await audit(page, "challenge page");
    await shot(page, "challenge-ko-desktop");
    await shot(page, "challenge-ko-mobile", MOBILE);
    const otp = (await page.textContent("#sandbox-otp")).trim();
    assert(/^\d{4,8}$/.test(otp), `#sandbox-otp holds a code: ${JSON.stringify(otp)}`);
    equal(await page.getAttribute("#tries-left", "data-tries-left"), "3", "tries left before any code");
    const wrong = otp.slice(0, -1) + String((Number(otp.slice(-1)) + 1) % 10);
    await page.fill("#otp", wrong);
    await page.click("#verify-button");
    await page.waitForSelector("#error");
    assert((await page.textContent("#error")).trim() !== "", "#error says what went wrong");
    equal(await page.getAttribute("#tries-left", "data-tries-left"), "2", "tries left after a wrong code");
    await audit(page, "challenge page after a wrong OTP");
    await shot(page, "challenge-wrong-otp");
    await page.fill("#otp", (await page.textContent("#sandbox-otp")).trim());
    await Promise.all([page.waitForURL(onShop("/return")), page.click("#verify-button")]);
    await expectResult(page, { status: "DONE", signed: true });
    equal((await paymentByOrder(orderId)).status, "DONE", "API status");
  }],

  ["2b challenge card: three wrong OTPs → no approval", async (page) => {
    const orderId = await toCardPage(page);
    await fillCard(page, CARD.challenge);
    await page.click("#pay-button");
    await page.waitForSelector("#otp-form");
    const otp = (await page.textContent("#sandbox-otp")).trim();
    const wrong = otp.slice(0, -1) + String((Number(otp.slice(-1)) + 1) % 10);
    for (let attempt = 1; attempt <= 3; attempt++) {
      if (!page.url().startsWith(GATEWAY) || !(await page.$("#otp-form"))) break;
      await page.fill("#otp", wrong);
      await page.click("#verify-button");
      await page.waitForLoadState();
    }
    note(`after three wrong OTPs: ${page.url().replace(GATEWAY, "paygate").replace(SHOP, "shop")}`);
    const payment = await paymentByOrder(orderId);
    assert(payment.status !== "DONE", "three wrong OTPs must not approve");
    assert((await approvalsOf(payment.paymentKey)).length === 0, "no approval transaction");
    if (page.url().startsWith(SHOP + "/return")) {
      await expectResult(page, { status: "FAILED", signed: true });
    } else {
      assert(await page.isVisible("[role=alert]"), "paygate says why the payment stopped");
    }
  }],

  ["3 declined card → FAILED on return with REJECT_CARD_PAYMENT", async (page) => {
    const orderId = await toCardPage(page);
    await fillCard(page, CARD.declined);
    await page.click("#pay-button");
    try {
      await page.waitForURL(onShop("/return"));
    } catch (timeout) {
      const alert = await page.textContent("[role=alert]").catch(() => null);
      throw new Error(`a declined form payment must end on returnUrl with status=FAILED; stayed at ${page.url()} (alert: ${alert})`);
    }
    await expectResult(page, { status: "FAILED", signed: true });
    equal((await page.textContent("#code")).trim(), "REJECT_CARD_PAYMENT", "the failure code on the shop page");
    const query = Object.fromEntries(new URL(page.url()).searchParams);
    equal(query.paymentKey ?? "", "", "a failed result carries no paymentKey");
    await shot(page, "declined-return");
    const payment = await paymentByOrder(orderId);
    assert(["ABORTED", "FAILED"].includes(payment.status), `API status is ABORTED, got ${payment.status}`);
    equal(payment.failure?.code, "REJECT_CARD_PAYMENT", "API failure.code");
  }],

  ["4 tampered form (amount changed after signing) → paygate error page, no payment", async (page) => {
    const orderId = await openShop(page);
    hygiene.expectedHttpErrors.add(`${GATEWAY}/checkout`);
    await page.evaluate(() => { document.querySelector("#checkout-form input[name=amount]").value = "100"; });
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${GATEWAY}/checkout` && r.request().method() === "POST"),
      page.click("#form-pay"),
    ]);
    await page.waitForLoadState();
    assert(response.status() >= 400 && response.status() < 500, `POST /checkout answered ${response.status()}, expected 4xx`);
    assert(page.url().startsWith(GATEWAY), `stays on paygate's error page, at ${page.url()}`);
    assert(!(await page.$("#card-form")), "no card form for a tampered request");
    const text = await page.textContent("body");
    assert(text.trim().length > 0, "the error page explains itself");
    await audit(page, "error page (tampered form)");
    await shot(page, "tampered-error");
    const lookup = await api("GET", `/v1/payments/orders/${encodeURIComponent(orderId)}`);
    equal(lookup.status, 404, `GET /v1/payments/orders/${orderId} after tampering`);
  }],

  ["4b paygate's pages show no text taken from their URL (no message injection)", async (page) => {
    await toCardPage(page);
    const marker = "전화 010-0000-0000 INJECTED-8271";
    const base = page.url().split("?")[0];
    for (const url of [`${base}?lang=ko&error=${encodeURIComponent(marker)}`, `${base}?lang=ko&message=${encodeURIComponent(marker)}`]) {
      await page.goto(url);
      const text = await page.textContent("body");
      if (text.includes("INJECTED-8271")) await shot(page, "injected-message");
      assert(!text.includes("INJECTED-8271"), `${url.replace(GATEWAY, "")} shows the text from its URL on paygate's page`);
    }
  }],

  ["5 double submit and back-button resubmit → exactly one approval", async (page) => {
    const orderId = await toCardPage(page);
    await fillCard(page, CARD.approvedA);
    // The second click's POST aborts the first navigation in the browser (net::ERR_ABORTED); the second answer is
    // the result, or paygate's waiting page that refreshes into it. Either way the browser must end on /return.
    const landed = page.waitForURL(onShop("/return"), { timeout: 15_000 }).catch((error) => {
      if (!/ERR_ABORTED|frame was detached/.test(String(error))) throw error;
      return page.waitForURL(onShop("/return"), { timeout: 15_000 });
    });
    await page.click("#pay-button", { clickCount: 2, delay: 0 });
    await landed;
    await expectResult(page, { status: "DONE", signed: true });
    const payment = await paymentByOrder(orderId);
    // Back to paygate's page and submit again if the form is still there.
    await page.goBack();
    await page.waitForLoadState();
    note(`back button after paying: landed on ${page.url().startsWith(GATEWAY) ? "paygate " : "the shop "}${new URL(page.url()).pathname}`);
    if (page.url().startsWith(GATEWAY)) {
      await audit(page, "checkout page after the back button");
      await shot(page, "after-back-button");
      if (await page.isVisible("#card-form").catch(() => false)) {
        await fillCard(page, CARD.approvedA);
        await page.click("#pay-button");
        await page.waitForLoadState();
      }
    }
    equal((await approvalsOf(payment.paymentKey)).length, 1, "approvals after double click + back button");
    equal((await paymentByOrder(orderId)).status, "DONE", "API status");

    // Two POSTs of the same form at once (what a double click sends when nothing stops the second).
    const orderId2 = await toCardPage(page);
    await fillCard(page, CARD.approvedA);
    const { action, fields } = await page.evaluate(() => {
      const form = document.querySelector("#card-form");
      return { action: form.action, fields: Object.fromEntries(new FormData(form)) };
    });
    // The context's request client shares the browser's cookies, so this is the browser sending the form twice.
    const send = () => page.context().request.post(action, { form: fields, maxRedirects: 0 }).then((r) => r.status(), (e) => e.message);
    const statuses = await Promise.all([send(), send()]);
    note(`two concurrent POSTs of the card form answered ${statuses.join(" and ")}`);
    const payment2 = await paymentByOrder(orderId2);
    equal((await approvalsOf(payment2.paymentKey)).length, 1, `approvals after two concurrent POSTs (answers ${statuses})`);
    equal(payment2.status, "DONE", "API status after two concurrent POSTs");
  }],

  ["6 SDK redirect (double click) → hosted page → /success confirms server-side", async (page) => {
    const orderId = await sdkRedirect(page, 2);
    await audit(page, "card page (SDK)");
    await fillCard(page, CARD.approvedB);
    await Promise.all([page.waitForURL(onShop("/success")), page.click("#pay-button")]);
    await expectResult(page, { status: "DONE" });
    assert(await page.isVisible("#receipt"), "the shop shows a receipt link");
    const payment = await paymentByOrder(orderId);
    equal(payment.status, "DONE", "API status");
    // Acquirer B is Toss's card-company code 21 (하나); docs/toss-compat.md has the table.
    equal(payment.card?.acquirerCode, "21", "5400… goes to acquirer B (card-company code 21)");
    equal(payment.method, "카드", "Toss's method spelling");
    equal((await approvalsOf(payment.paymentKey)).length, 1, "one approval");
  }],

  ["6b SDK popup → hosted page in a popup → opener sees the confirmed order", async (page) => {
    const { orderId, popup } = await sdkPopup(page);
    await audit(popup, "card page (SDK popup)");
    await shot(popup, "hosted-popup");
    await fillCard(popup, CARD.approvedC);
    await Promise.all([page.waitForURL(onShop("/orders/")), popup.click("#pay-button")]);
    await expectResult(page, { status: "DONE" });
    assert(popup.isClosed(), "the SDK closed the popup");
    const payment = await paymentByOrder(orderId);
    equal(payment.status, "DONE", "API status");
    equal(payment.card?.acquirerCode, "31", "9400… goes to acquirer C (card-company code 31)");
  }],

  ["6c SDK redirect with a declined card → failUrl, or a declined confirm", async (page) => {
    const orderId = await sdkRedirect(page);
    await fillCard(page, CARD.declined);
    await page.click("#pay-button");
    await page.waitForLoadState();
    if (page.url().startsWith(GATEWAY)) {
      // Allowed: the page shows the decline and lets the buyer try another card.
      await page.waitForSelector("[role=alert]");
      await audit(page, "card page after a decline (SDK)");
      note(`SDK decline: paygate re-showed the page: ${(await page.textContent("[role=alert]")).trim()}`);
      return;
    }
    await page.waitForURL((url) => onShop("/fail")(url) || onShop("/success")(url));
    if (page.url().startsWith(SHOP + "/success")) {
      // Also allowed (Toss's model): the page only authenticates, and the acquirer declines at the confirm.
      await expectResult(page, { status: "FAILED" });
      equal((await page.textContent("#code")).trim(), "REJECT_CARD_PAYMENT", "the confirm's failure code on the shop page");
      const payment = await paymentByOrder(orderId);
      equal(payment.status, "ABORTED", "API status after a declined confirm");
      equal(payment.failure?.code, "REJECT_CARD_PAYMENT", "API failure.code");
      note("SDK decline: paygate sent the buyer to successUrl and the merchant's confirm was declined (REJECT_CARD_PAYMENT)");
      return;
    }
    const query = Object.fromEntries(new URL(page.url()).searchParams);
    equal(query.code, "REJECT_CARD_PAYMENT", "failUrl code");
    equal(query.orderId, orderId, "failUrl orderId");
    assert(query.message, "failUrl message");
    note("SDK decline: paygate ended on failUrl");
  }],

  ["6d SDK popup closed by the buyer → the promise rejects with USER_CANCEL", async (page) => {
    const { popup } = await sdkPopup(page);
    await popup.close();
    await page.waitForFunction(() => document.querySelector("#sdk-error").textContent.includes("USER_CANCEL"));
  }],

  ["6e Toss's SDK calls: a method paygate lacks and a bad amount reject with INVALID_PARAMETER; the one-argument form works", async (page) => {
    await page.goto(SHOP + "/");
    const answers = await page.evaluate(async () => {
      // Every one of these is refused before the SDK calls the gateway, so any well-formed client key will do.
      const sdk = TossPayments("test_ck_0000");
      const base = { orderId: "toss-sdk-check-1", orderName: "T", successUrl: "/success", failUrl: "/fail" };
      const code = (p) => p.then(() => "resolved", (e) => e.code);
      return {
        sameConstructor: TossPayments === PayGate,
        mobilePhone: await code(sdk.requestPayment("휴대폰", { ...base, amount: 1000 })),
        badAmount: await code(sdk.requestPayment("카드", { ...base, amount: 10.5 })),
        noSuccessUrl: await code(sdk.requestPayment("CARD", { ...base, amount: 1000, successUrl: undefined })),
        oldForm: await code(sdk.requestPayment({ ...base, amount: 1000, method: "상품권" })),
      };
    });
    equal(answers.sameConstructor, true, "TossPayments is PayGate");
    equal(answers.mobilePhone, "INVALID_PARAMETER", "휴대폰, a method paygate's window lacks");
    equal(answers.badAmount, "INVALID_PARAMETER", "a fractional amount");
    equal(answers.noSuccessUrl, "INVALID_PARAMETER", "no successUrl");
    equal(answers.oldForm, "INVALID_PARAMETER", "the one-argument form checks its method too");
  }],

  ["9 subscription: SDK requestBillingAuth → card → wrong then right issuer code → authKey exchanged → two monthly charges", async (page) => {
    await page.goto(SHOP + "/");
    const customerKey = (await page.textContent("#customer-key")).trim();
    await Promise.race([
      Promise.all([page.waitForURL(onGateway("/billing/")), page.click("#billing-register")]),
      sdkFailure(page),
    ]);
    await page.waitForSelector("#card-form");
    const registration = new URL(page.url()).pathname; // /billing/bau_…
    await audit(page, "billing card page");
    await shot(page, "billing-card");
    // The card that needs the buyer's authentication: key-in could not register it, this page can.
    await fillCard(page, CARD.challenge);
    await Promise.all([page.waitForURL(onGateway("/billing/")), page.click("#register-button")]);
    await page.waitForSelector("#otp-form");
    await audit(page, "billing challenge page");
    equal(await page.getAttribute("#tries-left", "data-tries-left"), "3", "tries before any answer");
    const otp = (await page.textContent("#sandbox-otp")).trim();
    const wrong = otp === "000000" ? "111111" : "000000";
    await page.fill("#otp", wrong);
    await Promise.all([page.waitForURL(/error=otp_mismatch/), page.click("#verify-button")]);
    assert(await page.isVisible("#error"), "a wrong code shows an error");
    equal(await page.getAttribute("#tries-left", "data-tries-left"), "2", "tries after a wrong answer");
    await audit(page, "billing challenge page after a wrong code");
    await page.fill("#otp", otp);
    await Promise.all([page.waitForURL(onShop("/billing/success")), page.click("#verify-button")]);
    const landed = new URL(page.url());
    equal(landed.searchParams.get("customerKey"), customerKey, "successUrl customerKey");
    assert((landed.searchParams.get("authKey") ?? "").startsWith("bak_"), "successUrl carries the authKey");
    await page.waitForSelector("#billing-key");
    const billingKey = (await page.textContent("#billing-key")).trim();
    equal((await page.textContent("#billing-card")).trim(), "433000******0078", "the shop sees the masked card only");
    await page.click("#charge-again");
    await page.waitForFunction(() => document.querySelectorAll("#charges .charge").length === 2);
    const statuses = await page.$$eval("#charges .charge", (items) => items.map((i) => i.dataset.status));
    equal(statuses.join(","), "DONE,DONE", "two monthly charges");
    await shot(page, "billing-subscribed");
    const key = await api("GET", `/v1/billing/${billingKey}`);
    equal(key.status, 200, "billing key lookup");
    equal(key.json.registration, "AUTHENTICATED", "registered on paygate's page");
    equal(key.json.customerKey, customerKey, "the key's customer");
    const again = await api("POST", "/v1/billing/authorizations/issue", { authKey: landed.searchParams.get("authKey"), customerKey });
    equal(again.json?.billingKey, billingKey, "the same authKey answers the same key");
    // Coming back to the finished registration page sends the buyer on, never back to the form.
    await page.goto(GATEWAY + registration);
    await page.waitForURL(onShop("/billing/success"));
    equal(await page.$$eval("#charges .charge", (items) => items.length), 2, "the shop charged nothing more");
  }],

  ["10 account transfer: method picker → bank and cash receipt → the bank's page (wrong PIN, then approve) → signed return; receipt page; cancel refunds", async (page) => {
    const orderId = await toCardPage(page);
    // The shop's form names no method: the buyer picks one.
    await page.click("#method-transfer");
    await page.waitForSelector("#transfer-form");
    await audit(page, "transfer form");
    assert((await page.textContent("#transfer-button")).includes("원 결제하기"), "the button names the amount first in Korean");
    await page.selectOption("#transfer-bank", "06");
    // The buyer asks for a cash receipt (소득공제) with the transfer.
    await page.selectOption("#transfer-receipt-type", "소득공제");
    await page.fill("#transfer-receipt-number", "010-1234-5678");
    await Promise.all([page.waitForURL(onGateway("/bank/transfers/")), page.click("#transfer-button")]);
    await page.waitForSelector("#authorize-form");
    await audit(page, "the sandbox bank's authorization page");
    await shot(page, "bank-authorize");
    await page.fill("#account-number", "110-123-456789");
    await page.fill("#holder-name", "박토스");
    await page.fill("#pin", "0000");
    hygiene.expectedHttpErrors.add(page.url());
    await page.click("#authorize-button");
    await page.waitForSelector("#bank-error");
    assert((await page.textContent("#bank-error")).includes("비밀번호"), "the bank says the PIN is wrong");
    await page.fill("#account-number", "110-123-456789");
    await page.fill("#holder-name", "박토스");
    await page.fill("#pin", "1234");
    await Promise.all([page.waitForURL(onShop("/return")), page.click("#authorize-button")]);
    await expectResult(page, { status: "DONE", signed: true });
    const payment = await paymentByOrder(orderId);
    equal(payment.status, "DONE", "API status");
    equal(payment.method, "계좌이체", "Toss's method spelling");
    equal(payment.transfer?.bankCode, "06", "the transfer's bank");
    // Its cash receipt, issued with the debit and registered by the sandbox tax authority.
    let receipted = payment;
    for (const deadline = Date.now() + NOTIFICATION_WAIT_MS; Date.now() < deadline;) {
      if (receipted.cashReceipts?.[0]?.issueStatus === "COMPLETED") break;
      await new Promise((resolve) => setTimeout(resolve, 50));
      receipted = await paymentByOrder(orderId);
    }
    equal(receipted.cashReceipts?.[0]?.issueStatus, "COMPLETED", "the transfer's cash receipt");
    equal(receipted.cashReceipt?.type, "소득공제", "the receipt's type");
    await page.goto(receipted.cashReceipt.receiptUrl);
    await page.waitForSelector("#cash-receipt");
    await audit(page, "cash receipt page");
    await shot(page, "cash-receipt");
    assert((await page.textContent("#cash-receipt")).includes(receipted.cashReceipt.issueNumber), "the page shows the authority's number");
    const cancel = await api("POST", `/v1/payments/${payment.paymentKey}/cancel`, { cancelReason: "구매자 변심" });
    equal(cancel.status, 200, `cancel (${cancel.text.slice(0, 200)})`);
    equal(cancel.json.status, "CANCELED", "cancelled through a refund to the same account");
    const journal = await fetch(`${GATEWAY}/bank/journal?afterSeq=0`).then((r) => r.json());
    const refunds = journal.entries.filter((e) => e.kind === "REFUND" && e.accountNumber === "110123456789");
    equal(refunds.length, 1, "one refund at the bank to the buyer's account");
    const afterCancel = await paymentByOrder(orderId);
    assert(afterCancel.cashReceipts.some((r) => r.transactionType === "CANCEL" && r.amount === payment.totalAmount), "the refund cancelled the cash receipt");
  }],

  ["10b virtual account on the hosted page: bank and depositor → signed return WAITING_FOR_DEPOSIT → a deposit pays it", async (page) => {
    const orderId = await toCardPage(page);
    await page.click("#method-virtual-account");
    await page.waitForSelector("#virtual-account-form");
    await audit(page, "virtual-account form");
    await page.selectOption("#va-bank", "20");
    await page.fill("#holder-name", "박토스");
    await shot(page, "virtual-account-form");
    await Promise.all([page.waitForURL(onShop("/return")), page.click("#virtual-account-button")]);
    await expectResult(page, { status: "WAITING_FOR_DEPOSIT", signed: true });
    const waiting = await paymentByOrder(orderId);
    assert((await page.textContent("#account")).includes(waiting.virtualAccount.accountNumber), "the shop shows the account to pay");
    equal(waiting.method, "가상계좌", "Toss's method spelling");
    equal(waiting.virtualAccount?.bankCode, "20", "the account's bank");
    const deposit = await fetch(`${GATEWAY}/bank/deposits`, { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ accountNumber: waiting.virtualAccount.accountNumber, amount: waiting.totalAmount, currency: "KRW", depositorName: "박토스" }) });
    equal(deposit.status, 200, "the deposit at the sandbox bank");
    const deadline = Date.now() + NOTIFICATION_WAIT_MS;
    let paid = waiting;
    while (paid.status !== "DONE" && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      paid = await paymentByOrder(orderId);
    }
    equal(paid.status, "DONE", "the deposit paid the payment");
  }],

  ["10c back to the shop from paygate's page → signed FAILED return with USER_CANCEL; English from Accept-Language; test cards shown", async (page) => {
    const orderId = await toCardPage(page);
    assert((await page.textContent("#test-cards")).includes("4330 0000 0000 0003"), "test mode shows the test cards");
    await Promise.all([page.waitForURL(onShop("/return")), page.click("#back-to-shop")]);
    await expectResult(page, { status: "FAILED", signed: true });
    equal((await page.textContent("#code")).trim(), "USER_CANCEL", "the shop hears USER_CANCEL");
    const payment = await paymentByOrder(orderId);
    equal(payment.status, "ABORTED", "API status after the buyer left");
    equal(payment.failure?.code, "USER_CANCEL", "API failure code");
    // A browser that prefers English gets the page in English without ?lang=.
    const created = await api("POST", "/v1/payments", { amount: 5000, orderId: `accept-lang-${Date.now()}`, orderName: "Mug",
      successUrl: SHOP + "/success", failUrl: SHOP + "/fail" });
    equal(created.status, 200, `create (${created.text.slice(0, 200)})`);
    const response = await fetch(created.json.checkout.url, { headers: { "Accept-Language": "en-US,en;q=0.9,ko;q=0.5" } });
    const html = await response.text();
    assert(html.includes('<html lang="en">') && html.includes("Pay ₩5,000"), "Accept-Language: English page, amount after Pay");
    const korean = await (await fetch(created.json.checkout.url, { headers: { "Accept-Language": "ko-KR,ko;q=0.9" } })).text();
    assert(korean.includes('<html lang="ko">') && korean.includes("5,000원 결제하기"), "Accept-Language: Korean page");
  }],

  ["7 receipt page: masked card, approval number, amount; prints", async (page) => {
    const payment = shared.receiptPayment;
    assert(payment, "scenario 1 left no payment (run it first)");
    await page.goto(payment.receipt.url);
    await audit(page, "receipt");
    const text = await page.textContent("body");
    assert(text.includes("433000******0003"), "the receipt shows the masked card 433000******0003");
    assert(!text.includes(CARD.approvedA), "the receipt never shows the full card number");
    assert(payment.card?.approveNo && text.includes(payment.card.approveNo), `the receipt shows approval number ${payment.card?.approveNo}`);
    assert(/15,000|15000/.test(text), "the receipt shows the amount 15,000");
    await shot(page, "receipt");
    await page.emulateMedia({ media: "print" });
    equal(await page.evaluate(() => matchMedia("print").matches), true, "print media is emulated");
    await shot(page, "receipt-print");
    await page.pdf({ path: join(SCREENSHOTS, "receipt.pdf"), format: "A4" }).catch((e) => hygiene.warnings.push(`receipt.pdf: ${e.message}`));
    await page.emulateMedia({ media: "screen" });
    hygiene.expectedHttpErrors.add(payment.receipt.url.replace(/[^/]+$/, "not-the-token"));
    const wrongToken = await page.goto(payment.receipt.url.replace(/[^/]+$/, "not-the-token"));
    assert(wrongToken.status() === 404 || wrongToken.status() === 403, `a receipt URL with a wrong token answers ${wrongToken.status()}`);
  }],

  ["7b API reference (/docs): every operation listed, errors and examples shown, nothing from another host", async (page) => {
    const doc = await (await fetch(GATEWAY + "/v1/openapi.json")).json();
    const operations = Object.values(doc.paths).flatMap((item) => ["get", "post", "patch", "delete"].filter((m) => item[m]).map((m) => item[m]));
    assert(operations.length >= 30, `the document lists ${operations.length} operations`);
    await page.goto(GATEWAY + "/docs/");
    await page.waitForSelector(".opblock");
    // Swagger UI lists the webhooks paygate sends as operations too.
    const webhooks = Object.keys(doc.webhooks ?? {}).length;
    assert(webhooks >= 4, `the document lists ${webhooks} webhooks`);
    equal(await page.$$eval(".opblock", (blocks) => blocks.length), operations.length + webhooks, "operations and webhooks on the page");
    const title = await page.textContent(".info .title");
    assert(title.includes("paygate"), `the page's title says paygate: ${title}`);
    // Open the key-in operation: its request example and its documented errors are on the page.
    const keyIn = page.locator("#operations-Payments-keyIn");
    await keyIn.locator(".opblock-summary").click();
    await keyIn.locator(".responses-table").first().waitFor();
    const text = await keyIn.textContent();
    for (const expected of ["4330000000000003", "cardExpirationYear", "202", "INVALID_CARD_NUMBER", "REJECT_CARD_PAYMENT", "Idempotency-Key"]) {
      assert(text.includes(expected), `the key-in operation shows ${expected}`);
    }
    await shot(page, "api-reference");
    // Swagger UI's own markup: its form controls are not audited for labels; console errors and requests to other
    // hosts are (scenario 8).
    hygiene.auditedPages.push(`API reference: /docs/ (Swagger UI, ${operations.length} operations; labels not audited)`);
  }],

  ["8 hygiene: no console errors, no off-host requests, every paygate page audited", async () => {
    assert(hygiene.auditedPages.length > 0, "no paygate page was audited");
    // One line per distinct problem (payment keys and ports vary), with the scenarios it happened in.
    const grouped = new Map();
    const add = (kind, entries) => entries.forEach((entry) => {
      const [, scenario, text] = entry.match(/^\[([^\]]*)\] ([\s\S]*)$/);
      let key = `${kind}: ${text.replace(/pay_[0-9A-Za-z]+/g, "pay_…").replace(/[?&]lang=\w+/, "")}`;
      const seen404 = hygiene.httpErrors.some((e) => e.startsWith(`[${scenario}]`) && e.endsWith("404"));
      if (/status of 404/.test(text) && !seen404) key += " [no 404 response in the page's own requests: the browser's /favicon.ico]";
      grouped.set(key, [...(grouped.get(key) ?? []), scenario]);
    });
    add("console error", hygiene.consoleErrors);
    add("page error", hygiene.pageErrors);
    add("request to another host", hygiene.offHostRequests);
    const problems = [...grouped].map(([text, where]) => `${text} (in ${[...new Set(where)].join(", ")})`);
    if (problems.length && hygiene.httpErrors.length) {
      problems.push(`(responses >= 400 seen: ${[...new Set(hygiene.httpErrors.map((e) => e.replace(/^\[[^\]]*\] /, "").replace(/pay_[0-9A-Za-z]+/g, "pay_…")))].join("; ")})`);
    }
    assert(problems.length === 0, problems.join("\n    "));
  }],
];

// ---- runner ----

async function main() {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), "paygate-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: DESKTOP,
    locale: "ko-KR",
    timezoneId: "Asia/Seoul",
  });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  watch(context);
  const results = [];
  for (const [name, run] of scenarios.filter(([name]) => name.includes(ONLY) || name.startsWith("8"))) {
    currentScenario = name.split(" ")[0];
    const page = await context.newPage();
    const started = Date.now();
    try {
      await run(page);
      results.push({ name, ok: true, ms: Date.now() - started });
      console.log(`  ok    ${name} (${Date.now() - started} ms)`);
    } catch (error) {
      results.push({ name, ok: false, ms: Date.now() - started, error });
      console.log(`  FAIL  ${name} (${Date.now() - started} ms)\n    ${error.message.split("\n")[0]}\n    at ${page.url()}`);
      await page.screenshot({ path: join(SCREENSHOTS, `failure-${currentScenario}.png`), fullPage: true }).catch(() => {});
    }
    for (const p of context.pages()) await p.close().catch(() => {});
  }
  await context.close();
  rmSync(profile, { recursive: true, force: true });

  const failed = results.filter((r) => !r.ok);
  console.log(`\npaygate pages audited (${hygiene.auditedPages.length}):\n  ${hygiene.auditedPages.join("\n  ")}`);
  if (notes.length) console.log(`\nwhat paygate did where the contract allows a choice:\n  ${notes.join("\n  ")}`);
  if (hygiene.warnings.length) console.log(`\nwarnings (not failures):\n  ${[...new Set(hygiene.warnings)].join("\n  ")}`);
  for (const r of failed) console.log(`\nFAIL ${r.name}\n${r.error.stack}`);
  console.log(`\nbrowser e2e: ${results.length - failed.length} passed, ${failed.length} failed; screenshots in ${SCREENSHOTS}`);
  process.exitCode = failed.length ? 1 : 0;
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
