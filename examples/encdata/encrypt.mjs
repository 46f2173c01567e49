// paygate encData (docs/encdata.md), Node >= 18, no dependencies. Card fields JSON from argv[2] or stdin:
//   PAYGATE_ENC_KEY=<base64> PAYGATE_ENC_KEY_VERSION=1 PAYGATE_MID=mid_… PAYGATE_MODE=test node encrypt.mjs '{…}'
import { createCipheriv, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";

const env = (name) => process.env[name] ?? (console.error(`${name} is not set`), process.exit(2));
const key = Buffer.from(env("PAYGATE_ENC_KEY"), "base64"); // 32 bytes, else createCipheriv throws
const [keyVersion, mode] = [Number(env("PAYGATE_ENC_KEY_VERSION")), env("PAYGATE_MODE")];
if (!Number.isInteger(keyVersion) || keyVersion < 1) throw new Error("PAYGATE_ENC_KEY_VERSION: not a positive integer");
const header = Buffer.from([0x01, 0, 0, 0, 0]); // format version 1, then the key version (u32, big-endian)
header.writeUInt32BE(keyVersion, 1);
const testNonce = process.env.PAYGATE_ENC_TEST_NONCE_HEX; // a fixed nonce is for test vectors ONLY: never reuse one
if (testNonce && mode !== "test") throw new Error("PAYGATE_ENC_TEST_NONCE_HEX is only allowed with PAYGATE_MODE=test");
const nonce = testNonce ? Buffer.from(testNonce, "hex") : randomBytes(12);
const cipher = createCipheriv("aes-256-gcm", key, nonce).setAAD(Buffer.from(`${env("PAYGATE_MID")}:${mode}`, "utf8"));
const fields = JSON.stringify(JSON.parse(process.argv[2] ?? readFileSync(0, "utf8")));
const sealed = Buffer.concat([cipher.update(fields, "utf8"), cipher.final(), cipher.getAuthTag()]);
console.log(Buffer.concat([header, nonce, sealed]).toString("base64url"));
