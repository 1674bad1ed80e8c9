"""The e-banking browsers: busybox shell programs for a Linux instance (the startup scripts run
them with ``sh -c``).

:func:`split` is the untrusted browser of ``l4sim boot ebanking``: it fetches the bank's pages
through ``/dev/l4/net`` and shows them on ``/dev/fb0``, relays the sealed transaction to the
AppCore through ``/dev/l4/core`` and submits the AppCore's confirmation -- and, being
compromised, attacks on the side, printing ``attack NAME: refused by HOW`` or ``attack NAME:
SUCCEEDED`` for each:

- ``fake-dialog``: it shows a confirmation dialog dressed as the AppCore's over the bank's page
  and waits for the user's Enter on ``/dev/input/event0``; then it submits a transfer to
  Mallory with what it has -- no confirmation, since only the AppCore can make one;
- ``sniff-keys``: a ``cat`` of ``/dev/input/event0`` runs while the user types the PIN into the
  AppCore's view, and the key presses it caught are counted;
- ``read-pixels``: it reads ``/dev/fb0`` after the AppCore showed the transaction, compares it
  with the page it drew, and looks for any other device (``/dev/l4``, ``/dev/mem``);
- ``alter-amount``: it submits the confirmed transfer with ten times the amount.

:func:`monolithic` is the same application in one Linux instance (``l4sim boot ebanking-mono``):
the keys are files of the instance, the shell opens the seal and makes the confirmation with
``sha256sum`` (HMAC-SHA256 as ``H(opad || H(ipad || m))``), and the PIN is typed into the
browser's own page.
"""

from __future__ import annotations

import base64

from l4sim.scenarios.programs.ebanking_common import CENTS, PAYEE, fake_page, pads, subkeys

#: shell functions both browsers use: fetch a page chunk by chunk, show it, wait for Enter on fd 3
COMMON = r"""
fetch() {  # fetch NAME FILE: the bank's page NAME, 4 KiB a request
  : > "$2"; i=0
  while echo "PAGE $1 $i" > /dev/l4/net; do
    cat /dev/l4/net > /tmp/chunk
    [ -s /tmp/chunk ] || return 0
    cat /tmp/chunk >> "$2"; i=$((i + 1))
  done
  return 1
}
show() { gunzip -c "$1" > /dev/fb0; }
events() {  # the next events on fd 3 (event0), one line each: ... type code value
  dd bs=240 count=1 <&3 2>/dev/null | od -An -tu2 -w24 -v > /tmp/ev
}
pressed() { awk -v c="$1" '$9 == 1 && $10 == c && $11 == 1 { f = 1 } END { exit !f }' /tmp/ev; }
exec 3</dev/input/event0
fetch form /tmp/form.gz && show /tmp/form.gz || { echo "browser: the bank's page did not load"; exit 1; }
"""


def submit(confirmed: str) -> str:
    """The honest submission both browsers end with: ``SUBMIT`` the confirmed transfer
    (``txid payee cents MAC``, as shell words), then the line ``honest: ok`` (the bank booked
    it, and its page shows) or ``honest: failed``: the line the scenarios' reports read."""
    return f"""if echo "SUBMIT {confirmed}" > /dev/l4/net && [ "$(cat /dev/l4/net)" = booked ]; then
  echo "honest: ok"
  fetch done /tmp/done.gz && show /tmp/done.gz
else
  echo "honest: failed"
fi
sleep 0.05
"""


def split(payee: str = PAYEE, cents: int = CENTS) -> str:
    """The untrusted browser of the split application (see the module)."""
    fake = base64.encodebytes(fake_page().gz()).decode()
    return COMMON + f"""
# --- attack fake-dialog: the AppCore's looks over the bank's page; the user's Enter is ours
base64 -d > /tmp/fake.gz <<'END'
{fake}END
show /tmp/fake.gz
until events && pressed 28; do :; done
if echo "SUBMIT 1001 Mallory 1000 $(printf %064d 0)" > /dev/l4/net 2>/dev/null; then
  echo "attack fake-dialog: SUCCEEDED"
else
  echo "attack fake-dialog: refused by the label bar and the secure input path (the dialog is in the browser's view; the Enter went to the browser, and only the AppCore confirms)"
fi
show /tmp/form.gz
# --- the honest path: the sealed transaction to the AppCore, a sniffer on event0 meanwhile
echo "TX {payee} {cents}" > /dev/l4/net && cat /dev/l4/net > /tmp/tx
cat /dev/input/event0 > /tmp/sniffed & sniffer=$!
if dd if=/tmp/tx of=/dev/l4/core bs=4096 2>/dev/null; then cat /dev/l4/core > /tmp/conf; else : > /tmp/conf; fi
kill $sniffer; wait $sniffer 2>/dev/null
n=$(od -An -tu2 -w24 -v /tmp/sniffed | awk '$9 == 1 && $10 < 256 && $11 == 1' | wc -l)
[ "$n" = 0 ] && how="refused by the GUI focus" || how=SUCCEEDED
echo "attack sniff-keys: $how ($n key presses reached the browser while the user typed the PIN)"
[ -s /tmp/conf ] || {{ echo "browser: the AppCore did not confirm"; exit 1; }}
# --- attack read-pixels: what /dev/fb0 holds now, and any other way to the screen
cat /dev/fb0 > /tmp/shot
if gunzip -c /tmp/form.gz | cmp -s - /tmp/shot && [ "$(ls /dev/l4 | tr '\\n' ' ')" = "core net " ] \\
    && [ ! -e /dev/mem ]; then
  echo "attack read-pixels: refused by the GUI and capabilities (/dev/fb0 is the browser's own backing store; no device reaches the framebuffer, io or the AppCore)"
else
  echo "attack read-pixels: SUCCEEDED"
fi
# --- attack alter-amount, then the honest submission
set -- $(cat /tmp/conf)
if echo "SUBMIT $1 $2 $(($3 * 10)) $4" > /dev/l4/net 2>/dev/null; then
  echo "attack alter-amount: SUCCEEDED"
else
  echo "attack alter-amount: refused by the AppCore's confirmation (the bank books only the transfer the user saw)"
fi
""" + submit("$1 $2 $3 $4")


def _hex_file(path: str, data: bytes) -> str:
    return f"echo {data.hex()} | xxd -r -p > {path}\n"


def monolithic(channel_key: bytes, sign_key: bytes, pin: str, payee: str = PAYEE, cents: int = CENTS) -> str:
    """The same application in one Linux instance (see the module): keys and PIN are its files."""
    keys = "mkdir -p /etc/bank\n"
    kenc_kmac = subkeys(channel_key)
    for name, key in (("enc", kenc_kmac[0]), ("mac", kenc_kmac[1]), ("sign", sign_key)):
        ipad, opad = pads(key)
        keys += _hex_file(f"/etc/bank/{name}.ipad", ipad) + _hex_file(f"/etc/bank/{name}.opad", opad)
    keys += f"echo {pin} > /etc/bank/pin\n"
    return keys + COMMON + f"""
hmac() {{  # hmac KEY < DATA: HMAC-SHA256 in hex, from the key's pads
  cat /etc/bank/$1.ipad - | sha256sum | cut -c1-64 | xxd -r -p > /tmp/inner
  cat /etc/bank/$1.opad /tmp/inner | sha256sum | cut -c1-64
}}
echo "TX {payee} {cents}" > /dev/l4/net && cat /dev/l4/net > /tmp/tx
# open the seal: nonce (16), ciphertext, tag (32)
size=$(wc -c < /tmp/tx); n=$((size - 48))
dd if=/tmp/tx of=/tmp/nonce bs=16 count=1 2>/dev/null
dd if=/tmp/tx of=/tmp/ct bs=1 skip=16 count=$n 2>/dev/null
tag=$(dd if=/tmp/tx bs=1 skip=$((size - 32)) 2>/dev/null | od -An -tx1 -v | tr -d ' \\n')
[ "$(cat /tmp/nonce /tmp/ct | hmac mac)" = "$tag" ] || {{ echo "browser: the transaction is not the bank's"; exit 1; }}
: > /tmp/ks; i=0
while [ $((i * 32)) -lt $n ]; do
  {{ cat /tmp/nonce; printf "\\\\$(printf %03o $i)"; }} | hmac enc | xxd -r -p >> /tmp/ks; i=$((i + 1))
done
tx=$(od -An -tu1 -v -w1 /tmp/ct > /tmp/a; od -An -tu1 -v -w1 /tmp/ks > /tmp/b
     paste /tmp/a /tmp/b | awk 'NF == 2 {{ printf "%c", xor($1, $2) }}')
IFS='|' read -r txid payee cents <<EOF
$tx
EOF
echo "browser: transaction $txid: $payee, $cents cents"
# the bank's confirmation page; the PIN typed into it, then Enter
fetch confirm-$txid /tmp/confirm.gz && show /tmp/confirm.gz
typed=""
until events && typed="$typed$(awk '$9 == 1 && $11 == 1 && $10 >= 2 && $10 <= 11 {{ printf "%d", ($10 - 1) % 10 }}' /tmp/ev)" \\
    && pressed 28; do :; done
[ "$typed" = "$(cat /etc/bank/pin)" ] || {{ echo "browser: wrong PIN"; exit 1; }}
mac=$(printf "confirmed|%s|%s|%s" $txid $payee $cents | hmac sign)
""" + submit("$txid $payee $cents $mac")

