// An example shop that takes payments through paygate. Node >= 18, no dependencies.
//   PAYGATE_URL=http://127.0.0.1:8080 PAYGATE_SECRET_KEY=test_sk_… PAYGATE_CLIENT_KEY=test_ck_… PORT=4000 \
//     node examples/merchant/server.mjs
// It shows both ways to pay (see README.md here):
//   (a) the hosted 인증결제 form: the page POSTs a signed HTML form to {PAYGATE_URL}/checkout, paygate approves
//       and sends the buyer to /return with a signed result, and calls /notify server-to-server;
//   (b) the browser SDK ({PAYGATE_URL}/sdk/paygate.js): paygate sends the buyer to /success, and this server
//       confirms the payment with its secret key.
//   (c) a subscription (자동결제): the SDK's requestBillingAuth registers the buyer's card on paygate's page;
//       this server exchanges the authKey for a billing key at /billing/success and charges it with the secret key.
// The secret key and the checkout signing key never leave this server.
import { createServer } from "node:http";
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";

const PAYGATE_URL = (process.env.PAYGATE_URL ?? "http://127.0.0.1:8080").replace(/\/+$/, "");
const SECRET_KEY = process.env.PAYGATE_SECRET_KEY ?? "";
const CLIENT_KEY = process.env.PAYGATE_CLIENT_KEY ?? "";
const PORT = Number(process.env.PORT ?? 4000);
const SHOP_URL = (process.env.SHOP_URL ?? `http://127.0.0.1:${PORT}`).replace(/\/+$/, "");
const ORDERS_MAX = 1000; // in-memory stores are bounded: the oldest entries go first
const NOTIFICATIONS_MAX = 1000;
const BODY_BYTES_MAX = 64 * 1024;
const GATEWAY_TIMEOUT_MS = 15_000;

if (!SECRET_KEY.startsWith("test_sk_") && !SECRET_KEY.startsWith("live_sk_")) {
  console.error("set PAYGATE_SECRET_KEY (test_sk_…) and PAYGATE_CLIENT_KEY (test_ck_…); see README.md");
  process.exit(2);
}

const PRODUCTS = [
  { id: "mug", nameKo: "paygate 머그컵", nameEn: "paygate mug", price: 15000 },
  { id: "tshirt", nameKo: "paygate 티셔츠", nameEn: "paygate T-shirt", price: 29000 },
];

/** orderId → {orderId, amount, orderName, flow, status, paymentKey?, receiptUrl?, approveNo?, failure?} */
const orders = new Map();
/** customerKey → {customerKey, billingKey, card, charges: [{orderId, status, paymentKey, code?}]} */
const subscribers = new Map();
const SUBSCRIPTION = { orderName: "paygate 커피 정기구독 (coffee subscription)", price: 9900 };
/** What paygate POSTed to /notify, oldest first. */
const notifications = [];

function remember(map, key, value, max) {
  map.set(key, value);
  while (map.size > max) map.delete(map.keys().next().value);
}

// ---- paygate API (server side, secret key) ----

async function paygate(method, path, body, idempotencyKey) {
  const headers = { Authorization: "Basic " + Buffer.from(SECRET_KEY + ":").toString("base64") };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  const response = await fetch(PAYGATE_URL + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(GATEWAY_TIMEOUT_MS),
  });
  const text = await response.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: response.status, ok: response.ok, json, text };
}

let merchantPromise = null; // fetched once: {mId, mode, key (Buffer)}
function merchant() {
  merchantPromise ??= (async () => {
    const checkoutKey = await paygate("GET", "/v1/merchants/me/checkout-key");
    if (!checkoutKey.ok) throw new Error(`GET /v1/merchants/me/checkout-key answered ${checkoutKey.status}: ${checkoutKey.text}`);
    await registerRedirectOrigin();
    let mId = process.env.PAYGATE_MID;
    if (!mId) {
      const me = await paygate("GET", "/v1/merchants/me");
      if (!me.ok) throw new Error(`GET /v1/merchants/me answered ${me.status}: ${me.text}`);
      mId = me.json.mId;
    }
    return { mId, mode: checkoutKey.json.mode, key: Buffer.from(checkoutKey.json.key, "base64") };
  })();
  merchantPromise.catch(() => { merchantPromise = null; }); // try again on the next request
  return merchantPromise;
}

/** The SDK's successUrl and failUrl must be on an origin the merchant registered: this shop's own. */
async function registerRedirectOrigin() {
  const origin = new URL(SHOP_URL).origin;
  const settings = await paygate("GET", "/v1/merchants/me/settings");
  if (!settings.ok) throw new Error(`GET /v1/merchants/me/settings answered ${settings.status}: ${settings.text}`);
  const origins = settings.json.redirectOrigins ?? [];
  if (origins.includes(origin)) return;
  const patched = await paygate("PATCH", "/v1/merchants/me/settings", { redirectOrigins: [...origins, origin] });
  if (!patched.ok) throw new Error(`PATCH /v1/merchants/me/settings answered ${patched.status}: ${patched.text}`);
}

function hmacHex(key, message) {
  return createHmac("sha256", key).update(message, "utf8").digest("hex");
}

function sameHex(a, b) {
  const x = Buffer.from(String(a ?? ""), "utf8");
  const y = Buffer.from(String(b ?? ""), "utf8");
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Every field of the checkout form, in the order the signature covers them (absent ones as ""). */
const SIGNED_FIELDS = ["mId", "mode", "orderId", "amount", "timestamp", "returnUrl", "goodsName", "buyerName",
  "buyerEmail", "buyerTel", "notificationUrl"];

/** The form's signature: every field joined with "|" (docs/checkout.md). No field may contain "|". */
function signCheckout(key, f) {
  return hmacHex(key, SIGNED_FIELDS.map((name) => f[name] ?? "").join("|"));
}

/** The result's signature: paymentKey|orderId|amount|status (paymentKey empty when the payment failed). */
function verifyResult(key, q) {
  const expected = hmacHex(key, [q.paymentKey ?? "", q.orderId ?? "", q.amount ?? "", q.status ?? ""].join("|"));
  return sameHex(expected, String(q.signature ?? "").toLowerCase());
}

function newOrderId(prefix) {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString("hex")}`;
}

// ---- pages ----

const esc = (value) =>
  String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const won = (amount) => `${Number(amount).toLocaleString("ko-KR")}원`;

function layout(title, body) {
  return `<!doctype html>
<html lang="ko"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · Demo Shop</title>
<style>
  body { font-family: system-ui, "Apple SD Gothic Neo", "Noto Sans KR", sans-serif; max-width: 44rem; margin: 2rem auto;
         padding: 0 1rem; color: #1d2330; line-height: 1.5; }
  h1 { font-size: 1.5rem; } .card { border: 1px solid #d8dde6; border-radius: 12px; padding: 1rem 1.25rem; margin: 1rem 0; }
  .price { font-size: 1.25rem; font-weight: 700; } label { display: block; margin: .5rem 0 .15rem; font-size: .9rem; }
  input { font: inherit; padding: .4rem .5rem; width: 100%; max-width: 20rem; box-sizing: border-box; }
  button { font: inherit; padding: .6rem 1.1rem; border-radius: 8px; border: 0; background: #2454d6; color: #fff;
           cursor: pointer; margin: .75rem .5rem 0 0; } button.secondary { background: #4b5568; }
  .ok { color: #137333; } .bad { color: #b3261e; } dt { font-weight: 600; } dd { margin: 0 0 .5rem; }
  nav a { margin-right: 1rem; }
</style></head>
<body><nav><a href="/">Demo Shop 데모 상점</a></nav>
${body}
</body></html>`;
}

async function home(url) {
  const product = PRODUCTS.find((p) => p.id === url.searchParams.get("item")) ?? PRODUCTS[0];
  const others = PRODUCTS.filter((p) => p !== product)
    .map((p) => `<a href="/?item=${esc(p.id)}">${esc(p.nameKo)} / ${esc(p.nameEn)}</a>`).join(" ");
  const m = await merchant();
  const orderName = `${product.nameKo} (${product.nameEn})`;
  // One order per way to pay: an orderId is paid at most once.
  // Every field is signed, the buyer's details too: a real shop takes them on its own page before this one.
  const form = {
    mId: m.mId, mode: m.mode, orderId: newOrderId("form"), amount: String(product.price),
    timestamp: String(Math.floor(Date.now() / 1000)), returnUrl: `${SHOP_URL}/return`, goodsName: orderName,
    buyerName: "홍길동", buyerEmail: "buyer@example.com", buyerTel: "010-1234-5678", notificationUrl: `${SHOP_URL}/notify`,
  };
  const signature = signCheckout(m.key, form);
  const sdkOrderId = newOrderId("sdk");
  // The shop's own name for the customer, unguessable (a UUID): the billing key will belong to it.
  const customerKey = `cust-${randomUUID()}`;
  for (const [orderId, flow] of [[form.orderId, "FORM"], [sdkOrderId, "SDK"]]) {
    remember(orders, orderId, { orderId, amount: product.price, orderName, flow, status: "CREATED" }, ORDERS_MAX);
  }
  const hidden = (name, value) => `<input type="hidden" name="${name}" value="${esc(value)}">`;
  const sdk = { amount: product.price, orderId: sdkOrderId, orderName, successUrl: `${SHOP_URL}/success`,
    failUrl: `${SHOP_URL}/fail`, customerName: "홍길동", customerEmail: "buyer@example.com" };
  return layout("Shop", `
<h1>${esc(product.nameKo)} <small>${esc(product.nameEn)}</small></h1>
<p class="price" id="price">${won(product.price)}</p>
<p>테스트 모드입니다. 실제로 결제되지 않습니다. Test mode: nothing is really charged. Other products: ${others}</p>

<section class="card" aria-labelledby="form-title">
  <h2 id="form-title">(a) 카드 결제 — 결제창 폼 / Hosted checkout form</h2>
  <form id="checkout-form" method="post" action="${esc(PAYGATE_URL)}/checkout" accept-charset="utf-8">
    ${SIGNED_FIELDS.map((name) => hidden(name, form[name])).join("")}${hidden("signature", signature)}
    <dl id="buyer"><dt>구매자 / Buyer</dt><dd>${esc(form.buyerName)} · ${esc(form.buyerEmail)} · ${esc(form.buyerTel)}</dd></dl>
    <button id="form-pay" type="submit">${won(product.price)} 결제하기 / Pay</button>
  </form>
</section>

<section class="card" aria-labelledby="sdk-title">
  <h2 id="sdk-title">(b) 카드 결제 — 브라우저 SDK / Browser SDK</h2>
  <p>paygate.js (loaded from the gateway) opens paygate's payment page. 주문번호 / Order: <code id="sdk-order-id">${esc(sdkOrderId)}</code></p>
  <button id="sdk-redirect" type="button">결제하기 (페이지 이동) / Pay (redirect)</button>
  <button id="sdk-popup" type="button" class="secondary">결제하기 (팝업) / Pay (popup)</button>
  <p id="sdk-error" role="alert" class="bad"></p>
</section>

<section class="card" aria-labelledby="billing-title">
  <h2 id="billing-title">(c) 정기결제 카드 등록 / Subscribe (billing key)</h2>
  <p>${esc(SUBSCRIPTION.orderName)}: ${won(SUBSCRIPTION.price)} / month. 고객 / Customer: <code id="customer-key">${esc(customerKey)}</code></p>
  <button id="billing-register" type="button">카드 등록하고 구독하기 / Register a card and subscribe</button>
</section>

<!-- Toss Payments' v1 SDK code, unchanged but for the script's host (js.tosspayments.com → the gateway). -->
<script src="${esc(PAYGATE_URL)}/v1/payment"></script>
<script>
  const payment = ${JSON.stringify(sdk).replace(/</g, "\\u003c")};
  const billing = ${JSON.stringify({ customerKey, successUrl: `${SHOP_URL}/billing/success`, failUrl: `${SHOP_URL}/billing/fail`, customerName: "홍길동" }).replace(/</g, "\\u003c")};
  const errorBox = document.getElementById("sdk-error");
  const show = (e) => { errorBox.textContent = (e.code || "ERROR") + ": " + e.message; };
  let pg = null;
  try { pg = TossPayments(${JSON.stringify(CLIENT_KEY)}); } catch (e) { show(e); }
  document.getElementById("sdk-redirect").addEventListener("click", () => {
    errorBox.textContent = "";
    pg.requestPayment("카드", payment).catch(show);
  });
  document.getElementById("billing-register").addEventListener("click", () => {
    errorBox.textContent = "";
    pg.requestBillingAuth("카드", billing).catch(show);
  });
  document.getElementById("sdk-popup").addEventListener("click", () => {
    errorBox.textContent = "";
    // paygate's extra third argument: a popup instead of leaving the page.
    pg.requestPayment("카드", payment, { mode: "popup" })
      .then((result) => location.assign("/orders/" + encodeURIComponent(result.orderId)))
      .catch(show);
  });
</script>`);
}

function resultPage(title, order, extra = "") {
  const done = order.status === "DONE" || order.status === "WAITING_FOR_DEPOSIT";
  return layout(title, `
<h1 class="${done ? "ok" : "bad"}">${esc(title)}</h1>
${extra}
<dl>
  <dt>상태 / Status</dt><dd id="status">${esc(order.status)}</dd>
  <dt>주문번호 / Order</dt><dd id="order-id">${esc(order.orderId)}</dd>
  <dt>상품 / Item</dt><dd>${esc(order.orderName)}</dd>
  <dt>금액 / Amount</dt><dd id="amount">${order.amount === undefined || order.amount === "" ? "" : esc(won(order.amount))}</dd>
  ${order.paymentKey ? `<dt>paymentKey</dt><dd id="payment-key">${esc(order.paymentKey)}</dd>` : ""}
  ${order.approveNo ? `<dt>승인번호 / Approval no.</dt><dd id="approve-no">${esc(order.approveNo)}</dd>` : ""}
  ${order.account ? `<dt>입금 계좌 / Deposit to</dt><dd id="account">${esc(order.account.bankCode)} ${esc(order.account.accountNumber)} (${esc(order.account.customerName)})</dd><dt>입금 기한 / Due</dt><dd id="due-date">${esc(order.account.dueDate)}</dd>` : ""}
  ${order.failure ? `<dt>실패 사유 / Reason</dt><dd><code id="code">${esc(order.failure.code)}</code> <span id="message">${esc(order.failure.message)}</span></dd>` : ""}
</dl>
${order.receiptUrl ? `<p><a id="receipt" href="${esc(order.receiptUrl)}" target="_blank" rel="noopener">매출전표 보기 / View receipt</a></p>` : ""}
<p><a href="/">계속 쇼핑하기 / Continue shopping</a></p>`);
}

/** Form flow: paygate sends the buyer here with a signed result. Trust it only if the signature verifies. */
async function formReturn(q) {
  const m = await merchant();
  const verified = verifyResult(m.key, q);
  const order = orders.get(q.orderId ?? "");
  const amountMatches = order !== undefined && String(order.amount) === String(q.amount);
  const banner = `<p id="verified" data-verified="${verified}" class="${verified ? "ok" : "bad"}">${
    verified ? "서명 확인됨 / signature verified" : "서명 불일치: 결과를 믿을 수 없습니다 / signature INVALID: result not trusted"}</p>`
    + (amountMatches ? "" : `<p id="amount-mismatch" class="bad">주문 금액과 다릅니다 / unknown order or amount mismatch</p>`);
  if (!verified || !amountMatches) {
    return resultPage("결과 확인 실패 / Result not trusted", { orderId: q.orderId, amount: q.amount, status: "UNVERIFIED" }, banner);
  }
  if (q.status === "DONE") {
    // The signature says DONE; the API says what the receipt is (and re-checks the amount).
    const payment = await paygate("GET", `/v1/payments/${encodeURIComponent(q.paymentKey)}`);
    if (payment.ok && payment.json.status === "DONE" && payment.json.totalAmount === order.amount) {
      Object.assign(order, { status: "DONE", paymentKey: q.paymentKey, approveNo: payment.json.card?.approveNo,
        receiptUrl: payment.json.receipt?.url });
    } else {
      Object.assign(order, { status: "UNVERIFIED", failure: { code: payment.json?.code ?? "LOOKUP_FAILED", message: "payment lookup disagrees" } });
    }
  } else if (q.status === "WAITING_FOR_DEPOSIT") {
    // A virtual account: the buyer deposits into it; the shop shows where (from the API, not the URL).
    const payment = await paygate("GET", `/v1/payments/${encodeURIComponent(q.paymentKey)}`);
    const account = payment.ok ? payment.json.virtualAccount : null;
    Object.assign(order, { status: account ? "WAITING_FOR_DEPOSIT" : "UNVERIFIED", paymentKey: q.paymentKey, account });
  } else {
    Object.assign(order, { status: q.status, failure: { code: q.code, message: q.message } });
  }
  const titles = { DONE: "결제 완료 / Payment complete", WAITING_FOR_DEPOSIT: "입금 대기 / Awaiting your deposit" };
  return resultPage(titles[order.status] ?? "결제 실패 / Payment failed", order, banner);
}

/** SDK flow: the buyer paid on paygate's page; confirm it with the secret key (within 10 minutes). */
async function success(q) {
  const order = orders.get(q.orderId ?? "");
  if (!order || String(order.amount) !== String(q.amount)) {
    // Never confirm an amount the shop did not ask for: the query string is in the buyer's hands.
    return resultPage("결제 확인 실패 / Cannot confirm", { orderId: q.orderId, amount: q.amount, status: "REJECTED",
      failure: { code: "AMOUNT_MISMATCH", message: "unknown order or amount mismatch" } });
  }
  if (order.status !== "DONE") {
    const confirm = await paygate("POST", "/v1/payments/confirm",
      { paymentKey: q.paymentKey, orderId: order.orderId, amount: order.amount }, `confirm-${q.paymentKey}`);
    if (confirm.ok && confirm.json.status === "DONE") {
      Object.assign(order, { status: "DONE", paymentKey: confirm.json.paymentKey, approveNo: confirm.json.card?.approveNo,
        receiptUrl: confirm.json.receipt?.url, failure: undefined });
    } else {
      Object.assign(order, { status: confirm.json?.status ?? "FAILED", paymentKey: q.paymentKey,
        failure: { code: confirm.json?.code ?? `HTTP_${confirm.status}`, message: confirm.json?.message ?? confirm.text } });
    }
  }
  return resultPage(order.status === "DONE" ? "결제 완료 / Payment complete" : "결제 실패 / Payment failed", order);
}

/** Billing registration: exchange the one-time authKey for the billing key, then charge the first month. */
async function billingSuccess(q) {
  const customerKey = q.customerKey ?? "";
  let subscriber = subscribers.get(customerKey);
  if (!subscriber) {
    const issued = await paygate("POST", "/v1/billing/authorizations/issue", { authKey: q.authKey, customerKey },
      `issue-${q.authKey}`);
    if (!issued.ok) {
      return resultPage("카드 등록 실패 / Registration failed", { orderId: customerKey, status: "FAILED",
        failure: { code: issued.json?.code ?? `HTTP_${issued.status}`, message: issued.json?.message ?? issued.text } });
    }
    subscriber = { customerKey, billingKey: issued.json.billingKey, card: issued.json.card?.number, charges: [] };
    remember(subscribers, customerKey, subscriber, ORDERS_MAX);
  }
  if (subscriber.charges.length === 0) await chargeSubscriber(subscriber);
  return subscriberPage(subscriber);
}

/** Charges one month; the period's orderId doubles as the Idempotency-Key, so a retry never charges twice. */
async function chargeSubscriber(subscriber) {
  const orderId = `sub-${subscriber.customerKey.slice(-12)}-${subscriber.charges.length + 1}`;
  const charged = await paygate("POST", `/v1/billing/${encodeURIComponent(subscriber.billingKey)}`,
    { customerKey: subscriber.customerKey, amount: SUBSCRIPTION.price, orderId, orderName: SUBSCRIPTION.orderName }, orderId);
  subscriber.charges.push({ orderId, status: charged.json?.status ?? "FAILED", paymentKey: charged.json?.paymentKey ?? charged.json?.paymentKey,
    code: charged.ok ? undefined : charged.json?.code });
}

function subscriberPage(s) {
  const rows = s.charges.map((c) => `<li class="charge" data-status="${esc(c.status)}"><code>${esc(c.orderId)}</code> ${esc(c.status)}${c.code ? ` <code>${esc(c.code)}</code>` : ""}</li>`).join("");
  return layout("Subscription", `
<h1 class="ok">구독 중 / Subscribed</h1>
<dl>
  <dt>고객 / Customer</dt><dd id="customer-key">${esc(s.customerKey)}</dd>
  <dt>빌링키 / Billing key</dt><dd id="billing-key">${esc(s.billingKey)}</dd>
  <dt>카드 / Card</dt><dd id="billing-card">${esc(s.card ?? "")}</dd>
</dl>
<ol id="charges">${rows}</ol>
<form method="post" action="/billing/${encodeURIComponent(s.customerKey)}/charge"><button id="charge-again" type="submit">다음 달 결제 / Charge next month</button></form>
<p><a href="/">계속 쇼핑하기 / Continue shopping</a></p>`);
}

function billingFail(q) {
  return resultPage("카드 등록 실패 / Registration failed", { orderId: "-", status: "FAILED", failure: { code: q.code, message: q.message } });
}

function fail(q) {
  const order = orders.get(q.orderId ?? "");
  if (order && order.status !== "DONE") Object.assign(order, { status: "FAILED", failure: { code: q.code, message: q.message } });
  return resultPage("결제 실패 / Payment failed", order ?? { orderId: q.orderId, status: "FAILED", failure: { code: q.code, message: q.message } });
}

// ---- HTTP ----

function readBody(request) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    request.on("data", (chunk) => {
      size += chunk.length;
      if (size > BODY_BYTES_MAX) { reject(new Error("body too large")); request.destroy(); return; }
      chunks.push(chunk);
    });
    request.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    request.on("error", reject);
  });
}

function parseBody(raw, contentType = "") {
  if (contentType.includes("application/json")) return JSON.parse(raw || "{}");
  return Object.fromEntries(new URLSearchParams(raw));
}

async function route(request, url) {
  const query = Object.fromEntries(url.searchParams);
  const html = (body) => ({ status: 200, type: "text/html; charset=utf-8", body });
  const path = url.pathname;
  if (request.method === "GET" && path === "/") return html(await home(url));
  if (path === "/return") {
    // paygate redirects with GET; accept a POSTed result too, as some PGs send one.
    const fields = request.method === "POST" ? { ...query, ...parseBody(await readBody(request), request.headers["content-type"]) } : query;
    return html(await formReturn(fields));
  }
  if (request.method === "GET" && path === "/success") return html(await success(query));
  if (request.method === "GET" && path === "/fail") return html(fail(query));
  if (request.method === "GET" && path === "/billing/success") return html(await billingSuccess(query));
  if (request.method === "GET" && path === "/billing/fail") return html(billingFail(query));
  const chargeMatch = request.method === "POST" && path.match(/^\/billing\/([^/]+)\/charge$/);
  if (chargeMatch) {
    const subscriber = subscribers.get(decodeURIComponent(chargeMatch[1]));
    if (!subscriber) return { status: 404, type: "text/plain; charset=utf-8", body: "no such subscriber\n" };
    await chargeSubscriber(subscriber);
    return html(subscriberPage(subscriber));
  }
  if (request.method === "GET" && path.startsWith("/orders/")) {
    const order = orders.get(decodeURIComponent(path.slice("/orders/".length)));
    if (!order) return { status: 404, type: "text/plain; charset=utf-8", body: "no such order\n" };
    return html(resultPage(order.status === "DONE" ? "결제 완료 / Payment complete" : `주문 상태 / Order: ${order.status}`, order));
  }
  if (request.method === "POST" && path === "/notify") {
    // The notification is a hint (it is not signed): a real shop re-reads the payment before shipping.
    const fields = parseBody(await readBody(request), request.headers["content-type"]);
    notifications.push({ receivedAt: new Date().toISOString(), contentType: request.headers["content-type"] ?? "", fields });
    if (notifications.length > NOTIFICATIONS_MAX) notifications.shift();
    console.log(`notification ${fields.orderId ?? "?"} ${fields.status ?? "?"} attempt ${fields.attempt ?? "?"}`);
    return { status: 200, type: "text/plain; charset=utf-8", body: "SUCCESS" };
  }
  if (request.method === "GET" && path === "/notifications") {
    return { status: 200, type: "application/json", body: JSON.stringify(notifications) };
  }
  if (request.method === "GET" && path === "/favicon.ico") return { status: 204, type: "text/plain", body: "" };
  return { status: 404, type: "text/plain; charset=utf-8", body: "not found\n" };
}

createServer(async (request, response) => {
  let result;
  try {
    result = await route(request, new URL(request.url, SHOP_URL));
  } catch (error) {
    console.error(`${request.method} ${request.url}: ${error.stack ?? error}`);
    result = { status: 502, type: "text/html; charset=utf-8",
      body: layout("Error", `<h1 class="bad">paygate에 연결할 수 없습니다 / Cannot reach paygate</h1><pre id="error">${esc(error.message)}</pre>`) };
  }
  response.writeHead(result.status, { "Content-Type": result.type, "Cache-Control": "no-store" });
  response.end(result.body);
}).listen(PORT, "127.0.0.1", () => console.log(`demo shop listening on ${SHOP_URL} (paygate: ${PAYGATE_URL})`));
