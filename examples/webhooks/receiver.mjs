// A webhook receiver that verifies paygate's Standard Webhooks signatures. Node >= 18, no dependencies.
//   PAYGATE_WEBHOOK_SECRET=whsec_… PORT=4000 node receiver.mjs
// The `verify` function is the one docs/webhooks.md shows; CI runs this file against a live gateway
// (examples/webhooks/smoke.sh), so the documented example is known to work.
import { createServer } from "node:http";
import { createHmac, timingSafeEqual } from "node:crypto";

export function verify(secret, id, timestamp, signatureHeader, rawBody) {
  if (!id || !timestamp || !signatureHeader) return false;
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > 300) return false;
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const expected = createHmac("sha256", key).update(`${id}.${timestamp}.${rawBody}`).digest();
  return signatureHeader.split(" ").some((part) => {
    const [version, sig] = part.split(",");
    const given = Buffer.from(sig ?? "", "base64");
    return version === "v1" && given.length === expected.length && timingSafeEqual(given, expected);
  });
}

const secret = process.env.PAYGATE_WEBHOOK_SECRET ?? "";
const seen = new Set(); // webhook-id: retries of one event carry the same id
createServer((request, response) => {
  const chunks = [];
  request.on("data", (chunk) => chunks.push(chunk));
  request.on("end", () => {
    const raw = Buffer.concat(chunks).toString("utf8");
    const h = request.headers;
    if (!verify(secret, h["webhook-id"], h["webhook-timestamp"], h["webhook-signature"], raw)) {
      console.log(`rejected ${h["webhook-id"]}`);
      response.writeHead(400).end();
      return;
    }
    const event = JSON.parse(raw);
    if (!seen.has(event.id)) console.log(`verified ${event.id} ${event.type} ${event.data?.paymentKey ?? ""} ${event.data?.status ?? ""}`);
    seen.add(event.id);
    response.writeHead(204).end();
  });
}).listen(Number(process.env.PORT ?? 4000), "127.0.0.1", () => console.log("listening"));
