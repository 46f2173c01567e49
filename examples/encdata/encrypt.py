#!/usr/bin/env python3
"""paygate encData (docs/encdata.md), Python 3 + `pip install cryptography`. Card fields JSON from argv[1] or stdin:
PAYGATE_ENC_KEY=<base64> PAYGATE_ENC_KEY_VERSION=1 PAYGATE_MID=mid_… PAYGATE_MODE=test python3 encrypt.py '{…}'"""
import base64, json, os, struct, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

key = base64.b64decode(os.environ["PAYGATE_ENC_KEY"], validate=True)  # 32 bytes, else AESGCM raises
key_version, mode = int(os.environ["PAYGATE_ENC_KEY_VERSION"]), os.environ["PAYGATE_MODE"]
if key_version < 1:
    sys.exit("PAYGATE_ENC_KEY_VERSION: not a positive integer")
header = struct.pack(">BI", 0x01, key_version)  # format version 1, then the key version (u32, big-endian)
test_nonce = os.environ.get("PAYGATE_ENC_TEST_NONCE_HEX")  # a fixed nonce is for test vectors ONLY: never reuse one
if test_nonce and mode != "test":
    sys.exit("PAYGATE_ENC_TEST_NONCE_HEX is only allowed with PAYGATE_MODE=test")
nonce = bytes.fromhex(test_nonce) if test_nonce else os.urandom(12)
aad = f"{os.environ['PAYGATE_MID']}:{mode}".encode()
fields = json.loads(sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read())
plaintext = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
sealed = AESGCM(key).encrypt(nonce, plaintext, aad)  # ciphertext || 16-byte tag
print(base64.urlsafe_b64encode(header + nonce + sealed).rstrip(b"=").decode())
