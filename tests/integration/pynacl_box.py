#!/usr/bin/env python3
"""libsodium sealed boxes via PyNaCl, for the cross-implementation tests.

    pynacl_box.py seal <seal_key_hex>   plaintext on stdin  -> base64 sealed box on stdout
    pynacl_box.py open <open_key_hex>   base64 on stdin     -> plaintext on stdout

The base64 is standard with padding, as in Proxy-Tokenizer. Exit status 1 with a message
on stderr when the box does not open; 2 for bad usage.
"""

import base64
import sys

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox


def main(argv):
    if len(argv) != 3 or argv[1] not in ("seal", "open"):
        sys.stderr.write("usage: pynacl_box.py seal|open KEY_HEX\n")
        return 2
    command, key_hex = argv[1], argv[2]
    data = sys.stdin.buffer.read()
    if command == "seal":
        box = SealedBox(PublicKey(bytes.fromhex(key_hex)))
        sys.stdout.write(base64.b64encode(box.encrypt(data)).decode("ascii") + "\n")
        return 0
    box = SealedBox(PrivateKey(bytes.fromhex(key_hex)))
    try:
        plain = box.decrypt(base64.b64decode(data.strip(), validate=True))
    except (CryptoError, ValueError) as e:
        sys.stderr.write("open failed: %s\n" % e)
        return 1
    sys.stdout.buffer.write(plain)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
