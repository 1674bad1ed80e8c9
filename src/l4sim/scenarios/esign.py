"""Document signing split: the document prepared in Linux, signed by a native AppCore (Nizza II).

``scripts/esign.py`` boots the secure GUI, the secure storage of Nizza I (TPM driver, untrusted
store, storage server; measured boot), the signer AppCore (:mod:`l4sim.scenarios.programs.
esign_signer`: its Ed25519 key made from the TPM's random bytes and kept in secure storage)
and a Linux instance whose busybox shell prepares a contract and asks the signer for a
signature through ``/dev/l4/sign`` (:mod:`l4sim.scenarios.programs.esign_linux`).

The user (:data:`DEFAULT_INPUT`) clicks the signer's view and confirms the contract with Enter;
later refuses, with Esc, a paper that makes them owe Mallory money -- while Linux writes Enter
presses into its own ``/dev/input/event0``.  The summary ends with the attacks -- a document
changed after display, injected keys, the key sought -- and whether the honest signature
verifies with ``cryptography`` against the signer's public key; ``--json`` adds ``attacks``,
``honest_ok`` and ``signature_verified``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from l4sim.kernel.kernel import Kernel
from l4sim.runtime.system import System, setup_script
from l4sim.scenarios.ebanking import attacks, needs_busybox
from l4sim.scenarios.programs.esign_signer import VIEW

SCRIPT = Path(__file__).resolve().parent / "scripts" / "esign.py"

DEFAULT_INPUT = f"""\
# the user reads the contract in the signer's view and confirms it
400ms click {VIEW[0] + 200} {VIEW[1] + 100}
450ms key enter
# later the signer shows a paper the user never wrote: refused
700ms key esc
"""

_KEY = re.compile(r"^signer\s*\| signer: public key ([0-9a-f]{64})$")
_DOC = re.compile(r"^mail\s*\| esign: document ([0-9a-f]+)$")
_SIG = re.compile(r"^mail\s*\| esign: signature ([0-9a-f]{128})$")


def setup(kernel: Kernel, args: object = None) -> System:
    needs_busybox()
    return setup_script(kernel, SCRIPT)


def verified(text: str) -> bool:
    """Whether the signature Linux got verifies, with ``cryptography``, as the signer's
    Ed25519 signature of the document Linux prepared."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        for what, rx in (("key", _KEY), ("doc", _DOC), ("sig", _SIG)):
            m = rx.match(line)
            if m is not None:
                found[what] = m.group(1)
    if len(found) != 3:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(found["key"])).verify(
            bytes.fromhex(found["sig"]), bytes.fromhex(found["doc"]))
    except InvalidSignature:
        return False
    return True


def report(res: Any) -> dict[str, Any]:
    """The attack table from what Linux printed; the honest run worked when its signature verifies."""
    text = res.kernel.machine.uart.text()
    ok = verified(text)
    return {"attacks": attacks(text), "honest_ok": ok, "signature_verified": ok}
