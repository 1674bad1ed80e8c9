"""The Linux side of ``l4sim boot esign``: a busybox shell program that prepares a contract and
has the signer AppCore sign it (:mod:`l4sim.scenarios.programs.esign_signer`), through
``/dev/l4/sign`` -- and, being untrusted, attacks on the side, printing ``attack NAME: refused
by HOW`` or ``attack NAME: SUCCEEDED``:

- ``changed-document``: after the user confirmed the contract, it asks for a signature of the
  contract with the price changed;
- ``inject-keys``: it asks the signer to show a document the user will refuse, and meanwhile
  writes Enter key presses into ``/dev/input/event0`` -- as if the user had confirmed;
- ``steal-key``: it looks for any way to the key: a device of the storage or the TPM.

It prints the contract and its signature in hex (``esign: document ...``, ``esign:
signature ...``): the scenario's report checks the signature with ``cryptography``.
"""

from __future__ import annotations

CONTRACT = ("Contract of sale", "", "Alice sells Bob her bicycle for 50.00 EUR,", "to be paid on delivery.", "",
            "Dresden, 1 March 2026")
MALLORY = "I owe Mallory 1000.00 EUR."


def script(w: int, h: int) -> str:
    """The shell program (its display: ``w`` x ``h`` pixels)."""
    lines = " ".join(f"'{line}'" for line in CONTRACT)
    return rf"""
head -c {w * h * 4} /dev/zero | tr '\000' '\340' > /dev/fb0   # a light grey page
send() {{  # send OP [FILE]: one request to the signer; its answer in /tmp/answer
  {{ echo "$1"; [ -z "$2" ] || cat "$2"; }} > /tmp/req
  dd if=/tmp/req of=/dev/l4/sign bs=4096 2>/dev/null && cat /dev/l4/sign > /tmp/answer
}}
printf '%s\n' {lines} > /tmp/contract.txt
send SHOW /tmp/contract.txt || {{ echo "esign: the user did not confirm the contract"; exit 1; }}
# --- attack changed-document: the price changed after the user saw it
sed 's/50.00 EUR/5000.00 EUR/' /tmp/contract.txt > /tmp/changed.txt
if send SIGN /tmp/changed.txt; then
  echo "attack changed-document: SUCCEEDED"
else
  echo "attack changed-document: refused by the signer (it signs only the bytes it showed and the user confirmed)"
fi
send SIGN /tmp/contract.txt && sig=$(cat /tmp/answer)
echo "esign: document $(od -An -tx1 -v /tmp/contract.txt | tr -d ' \n')"
echo "esign: signature $sig"
# --- attack inject-keys: Enter presses written to event0 while the signer asks about Mallory's paper
printf '%s\n' '{MALLORY}' > /tmp/mallory.txt
( while :; do
    printf '%016d\001\000\034\000\001\000\000\000%016d\000\000\000\000\000\000\000\000' 0 0 > /dev/input/event0
    sleep 0.01
  done ) & injector=$!
if send SHOW /tmp/mallory.txt && send SIGN /tmp/mallory.txt; then
  echo "attack inject-keys: SUCCEEDED"
else
  echo "attack inject-keys: refused by the secure input path (what Linux writes to /dev/input/event0 stays in Linux; the signer takes keys from its own session only)"
fi
kill $injector
# --- attack steal-key: any device that reaches the key's storage or the TPM
if [ "$(ls /dev/l4 | tr '\n' ' ')" = "sign " ] && ! cat /dev/l4/storage /dev/l4/tpm 2>/dev/null; then
  echo "attack steal-key: refused by capabilities (Linux holds no channel to the storage or the TPM; the signer answers with signatures and its public key only)"
else
  echo "attack steal-key: SUCCEEDED"
fi
"""
