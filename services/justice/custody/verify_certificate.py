"""Recompute a custody certificate's chain with the standard library only.

    python3 verify_certificate.py custody-<item>.xml

hash_n = sha256(hash_{n-1} || canonical_n), the first previous hash being 32 zero bytes.
Prints the head it reached; exits 1 if any event, link or the stated head disagrees.
(The XML signature itself is checked with xmlsec1; see VERIFY.txt.)
"""

import base64
import hashlib
import json
import sys
import xml.etree.ElementTree as ET

NS = "{urn:justice-exchange:custody:1}"


def main(path: str) -> int:
    root = ET.parse(path).getroot()  # noqa: S314 - stdlib only by design; no DTDs are fetched
    item = root.findtext(f"{NS}Item")
    previous = "0" * 64
    events = root.findall(f"{NS}Events/{NS}Event")
    for position, event in enumerate(events, start=1):
        canonical = base64.b64decode(event.findtext(f"{NS}Canonical") or "")
        fields = json.loads(canonical)
        digest = hashlib.sha256(bytes.fromhex(previous) + canonical).hexdigest()
        if (
            fields["item"] != item
            or fields["sequence"] != position
            or event.get("sequence") != str(position)
            or event.get("previous") != previous
            or event.get("hash") != digest
        ):
            print(f"BROKEN at event {position}")
            return 1
        previous = digest
    head = root.find(f"{NS}Head")
    if head is None or head.text != previous or head.get("sequence") != str(len(events)):
        print(f"HEAD MISMATCH: computed {previous}")
        return 1
    print(previous)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
