// A stand-in for paygate's hosted-checkout contract, for developing the SDK, the example shop and the browser
// suite without the real gateway. It is NOT paygate: it keeps everything in memory, approves by card number and
// checks nothing else. The real suite runs against target/debug/paygate (run.sh); `run.sh --stub` runs it here.
//   node tests/browser/stub/gateway.mjs   → prints the same lines as `paygate serve --init`
import { createServer } from "node:http";
import { createHmac, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const SDK = fileURLToPath(new URL("../../../crates/paygate-api/assets/paygate.js", import.meta.url));
const port = Number(process.env.PORT ?? 0);
const MID = "mid_STUB0000000000000000000000";
const SK = "test_sk_" + randomBytes(16).toString("hex");
const CK = "test_ck_" + randomBytes(16).toString("hex");
const SIGNING_KEY = randomBytes(32);
const payments = new Map(); // paymentKey → payment
const transactions = [];
let redirectOrigins = []; // what the shop registered (the stub does not enforce it)
let base = "";

const id = (p) => `${p}_${Date.now().toString(36)}${randomBytes(6).toString("hex")}`;
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const hmac = (msg) => createHmac("sha256", SIGNING_KEY).update(msg).digest("hex");
// The sandbox acquirers as Toss card-company codes: A → 11, B → 21, C → 31.
const CARDS = { "4330000000000003": "11", "4330000000000078": "11", "5400000000000005": "21", "9400000000000007": "31" };

function view(p) {
  return { mId: MID, paymentKey: p.paymentKey, orderId: p.orderId, orderName: p.orderName, status: p.status, method: "카드",
    totalAmount: p.amount, balanceAmount: p.amount, card: p.card ?? null, failure: p.failure ?? null,
    checkout: { url: `${base}/checkout/${p.paymentKey}` }, receipt: p.status === "DONE" ? { url: `${base}/receipts/${p.paymentKey}/${p.token}` } : null };
}

function page(title, body, status = 200) {
  return { status, type: "text/html; charset=utf-8",
    body: `<!doctype html><html lang="ko"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${esc(title)}</title></head><body><h1>${esc(title)}</h1>${body}</body></html>` };
}
const json = (status, value, extra = {}) => ({ status, type: "application/json", body: JSON.stringify(value), headers: extra });
const redirect = (location) => ({ status: 303, type: "text/plain", body: "", headers: { Location: location } });
const apiError = (status, code, message) => json(status, { code, message }, CORS);
const CORS = { "Access-Control-Allow-Origin": "*" };

function cardPage(p, error = "") {
  const alert = error ? `<p id="error" role="alert">${esc(error)}</p>` : "";
  return page("결제하기", `<p>${esc(p.orderName)} ${p.amount.toLocaleString("ko-KR")}원</p>${alert}<form id="card-form" method="post" action="/checkout/${p.paymentKey}">
<label for="card-number">카드 번호</label><input id="card-number" name="cardNumber" inputmode="numeric" autocomplete="cc-number">
<label for="exp-month">월</label><input id="exp-month" name="expMonth"><label for="exp-year">년</label><input id="exp-year" name="expYear">
<label for="installment">할부</label><select id="installment" name="installment"><option value="0">일시불</option></select>
<button id="pay-button" type="submit">결제</button></form>`);
}

function otpPage(p, error = "") {
  const alert = error ? `<p id="error" role="alert">${esc(error)}</p>` : "";
  return page("카드 인증", `${alert}<p>테스트 OTP: <span id="sandbox-otp">${p.otp}</span></p><p id="tries-left" data-tries-left="${3 - (p.otpTries ?? 0)}">남은 입력 횟수: ${3 - (p.otpTries ?? 0)}회</p><form id="otp-form" method="post" action="/checkout/${p.paymentKey}/otp">
<label for="otp">인증번호</label><input id="otp" name="otp" inputmode="numeric"><button id="verify-button" type="submit">확인</button></form>`);
}

function finish(p, approved, code, message) {
  if (approved) {
    p.status = p.flow === "FORM" ? "DONE" : "IN_PROGRESS";
    p.card = { number: p.cardNumber.slice(0, 6) + "******" + p.cardNumber.slice(12), acquirerCode: CARDS[p.cardNumber], approveNo: String(10000000 + transactions.length) };
    if (p.flow === "FORM") approve(p);
  } else {
    p.status = "ABORTED";
    p.failure = { code, message };
  }
  if (p.flow === "FORM") {
    const status = approved ? "DONE" : "FAILED";
    const q = new URLSearchParams(approved ? { paymentKey: p.paymentKey, orderId: p.orderId, amount: p.amount, status }
      : { orderId: p.orderId, amount: p.amount, status, code, message });
    q.set("signature", hmac(`${approved ? p.paymentKey : ""}|${p.orderId}|${p.amount}|${status}`));
    if (p.notificationUrl) notify(p);
    return redirect(`${p.returnUrl}?${q}`);
  }
  return redirect(approved ? `${p.successUrl}?${new URLSearchParams({ paymentKey: p.paymentKey, orderId: p.orderId, amount: p.amount })}`
    : `${p.failUrl}?${new URLSearchParams({ code, message, orderId: p.orderId })}`);
}

function approve(p) {
  p.status = "DONE";
  transactions.push({ transactionKey: id("txn"), paymentKey: p.paymentKey, kind: "APPROVAL", status: "DONE", amount: p.amount });
}

function notify(p) {
  const body = new URLSearchParams({ mId: MID, paymentKey: p.paymentKey, orderId: p.orderId, status: p.status, totalAmount: p.amount, attempt: 1 });
  setTimeout(() => fetch(p.notificationUrl, { method: "POST", body }).catch(() => {}), 50);
}

async function route(req, url, body) {
  const path = url.pathname;
  const auth = Buffer.from((req.headers.authorization ?? "").replace(/^Basic /, ""), "base64").toString().replace(/:$/, "");
  if (req.method === "OPTIONS") return { status: 204, type: "text/plain", body: "", headers: { ...CORS,
    "Access-Control-Allow-Headers": "authorization, content-type, idempotency-key", "Access-Control-Allow-Methods": "POST" } };
  if (path === "/sdk/paygate.js" || path === "/v1/payment") return { status: 200, type: "text/javascript", body: readFileSync(SDK, "utf8") };
  if (path.startsWith("/v1/")) {
    if (auth !== SK && !(auth === CK && path === "/v1/payments")) return apiError(401, "UNAUTHORIZED_KEY", "the API key is not valid");
    const b = body ? JSON.parse(body) : {};
    if (path === "/v1/merchants/me") return json(200, { mId: MID, mode: "test" });
    if (path === "/v1/merchants/me/checkout-key") return json(200, { key: SIGNING_KEY.toString("base64"), mode: "test" });
    if (path === "/v1/merchants/me/settings") {
      if (req.method === "PATCH" && Array.isArray(b.redirectOrigins)) redirectOrigins = b.redirectOrigins;
      return json(200, { notificationUrl: null, notificationFormat: "FORM", redirectOrigins, mode: "test" });
    }
    if (path === "/v1/payments" && req.method === "POST") {
      const existing = [...payments.values()].find((p) => p.orderId === b.orderId);
      if (existing) return json(200, view(existing), CORS); // stands in for Idempotency-Key replay
      const p = { paymentKey: id("pay"), token: id("rcp"), flow: "SDK", status: "READY", ...b };
      payments.set(p.paymentKey, p);
      return json(200, view(p), CORS);
    }
    if (path === "/v1/payments/confirm") {
      const p = payments.get(b.paymentKey);
      if (!p || p.amount !== b.amount) return apiError(400, "AMOUNT_MISMATCH", "no");
      if (p.status === "IN_PROGRESS") approve(p);
      return json(200, view(p));
    }
    if (path === "/v1/transactions") return json(200, transactions);
    const byOrder = path.match(/^\/v1\/payments\/orders\/(.+)$/);
    if (byOrder) {
      const p = [...payments.values()].find((x) => x.orderId === byOrder[1]);
      return p ? json(200, view(p)) : apiError(404, "NOT_FOUND_PAYMENT", "no such payment");
    }
    const byKey = path.match(/^\/v1\/payments\/([^/]+)$/);
    if (byKey && payments.has(byKey[1])) return json(200, view(payments.get(byKey[1])));
    return apiError(404, "NOT_FOUND", "not found");
  }
  if (path === "/checkout" && req.method === "POST") {
    const f = Object.fromEntries(new URLSearchParams(body));
    const signed = ["mId", "mode", "orderId", "amount", "timestamp", "returnUrl", "goodsName", "buyerName", "buyerEmail",
      "buyerTel", "notificationUrl"];
    const expected = hmac(signed.map((name) => f[name] ?? "").join("|"));
    if (expected !== f.signature) return page("결제 요청 오류", `<p id="error" role="alert">INVALID_SIGNATURE</p>`, 400);
    const p = { paymentKey: id("pay"), token: id("rcp"), flow: "FORM", status: "READY", orderId: f.orderId, amount: Number(f.amount),
      orderName: f.goodsName, returnUrl: f.returnUrl, notificationUrl: f.notificationUrl };
    payments.set(p.paymentKey, p);
    return redirect(`/checkout/${p.paymentKey}`);
  }
  const checkout = path.match(/^\/checkout\/([^/]+)(\/otp)?$/);
  if (checkout && payments.has(checkout[1])) {
    const p = payments.get(checkout[1]);
    if (p.status !== "READY" && p.status !== "CHALLENGE") return page("처리된 결제", `<p id="status">${p.status}</p>`);
    if (req.method === "GET") return p.status === "CHALLENGE" ? otpPage(p) : cardPage(p);
    const f = Object.fromEntries(new URLSearchParams(body));
    if (checkout[2]) {
      if (f.otp === p.otp) return finish(p, true);
      return (p.otpTries = (p.otpTries ?? 0) + 1) >= 3 ? finish(p, false, "INVALID_OTP", "too many") : otpPage(p, "인증번호가 틀렸습니다");
    }
    p.cardNumber = (f.cardNumber ?? "").replace(/\D/g, "");
    if (p.cardNumber === "4330000000000078") {
      p.status = "CHALLENGE";
      p.otp = String(100000 + Math.floor(Math.random() * 900000));
      return otpPage(p);
    }
    if (!CARDS[p.cardNumber]) return finish(p, false, "REJECT_CARD_PAYMENT", "잔액 부족");
    return finish(p, true);
  }
  const receipt = path.match(/^\/receipts\/([^/]+)\/([^/]+)$/);
  if (receipt && payments.get(receipt[1])?.token === receipt[2]) {
    const p = payments.get(receipt[1]);
    return page("매출전표", `<dl><dt>카드</dt><dd>${p.card.number}</dd><dt>승인번호</dt><dd>${p.card.approveNo}</dd><dt>금액</dt><dd>${p.amount.toLocaleString()}원</dd></dl>`);
  }
  if (path === "/favicon.ico") return { status: 204, type: "text/plain", body: "" };
  return apiError(404, "NOT_FOUND", "not found");
}

const server = createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", async () => {
    const r = await route(req, new URL(req.url, base), Buffer.concat(chunks).toString()).catch((e) => apiError(500, "INTERNAL", e.message));
    res.writeHead(r.status, { "Content-Type": r.type, ...(r.headers ?? {}) });
    res.end(r.body);
  });
});
server.listen(port, "127.0.0.1", () => {
  base = `http://127.0.0.1:${server.address().port}`;
  console.log(`paygate stub: new database; created the demo merchant\n  mId:             ${MID}\n  test secret key: ${SK}\n  test client key: ${CK}`);
  console.log(`paygate listening on ${base} (stub)`);
});
