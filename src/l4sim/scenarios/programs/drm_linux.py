"""The Linux side of ``l4sim boot drm``: a busybox shell program that fetches the encrypted film
and its licence from the shop (``/dev/l4/net``), keeps them in ``/media``, and has the player
AppCore (:mod:`l4sim.scenarios.programs.drm_player`) play it through ``/dev/l4/player`` -- and,
being untrusted, attacks on the side, printing ``attack NAME: refused by HOW`` (HOW names the
errno the player answered where there is one) or ``attack NAME: SUCCEEDED``:

- ``capture-frames``: while the film plays, it reads ``/dev/fb0`` and compares it with the page
  it drew, and looks for any other device that could reach the screen;
- ``read-key``: it asks the player for the content key, and looks for a device of the storage
  or the TPM;
- ``tampered-media``: a byte of a frame changed in the film's file;
- ``reordered-media``: one frame's bytes sent as another frame's;
- ``forged-licence``: a byte of the licence changed (to get more plays, say);
- ``replayed-licence``: the spent licence sent again, then another play asked for;
- ``expired-licence``: a rental licence sent after its time, then a play asked for.
"""

from __future__ import annotations

from l4sim.scenarios.programs.drm_common import FRAMES, SEALED, TITLE


def script(w: int, h: int) -> str:
    """The shell program (its display: ``w`` x ``h`` pixels)."""
    return rf"""
head -c {w * h * 4} /dev/zero | tr '\000' '\050' > /tmp/page   # a dark grey page
cat /tmp/page > /dev/fb0
mkdir -p /media
get() {{  # get REQUEST FILE: ask the shop; its answer in FILE
  echo "$1" > /dev/l4/net 2>/tmp/err && cat /dev/l4/net > "$2"
}}
send() {{  # send OP [FILE]: one request to the player; its answer in /tmp/answer, a refusal in /tmp/err
  {{ echo "$1"; [ -z "$2" ] || cat "$2"; }} > /tmp/req
  dd if=/tmp/req of=/dev/l4/player bs=4096 2>/tmp/err && cat /dev/l4/player > /tmp/answer
}}
errno() {{ sed -n 's/.*: //p' /tmp/err | tail -n 1; }}  # the refusal dd reported
verdict() {{  # verdict NAME ERRNO HOW: refused by HOW when the player's last refusal was ERRNO
  if [ "$(errno)" = "$2" ]; then echo "attack $1: refused by $3; the player answered: $2"
  else echo "attack $1: SUCCEEDED (the player answered: $(errno), not the refusal of $3)"; fi
}}
frame() {{ dd if=/media/{TITLE}.drm bs={SEALED} skip="$1" count=1 2>/dev/null > /tmp/frame; }}
# the film, frame after frame, into /media; the licence once the player has registered
: > /media/{TITLE}.drm; i=0
while get "MEDIA {TITLE} $i" /tmp/chunk && [ -s /tmp/chunk ]; do cat /tmp/chunk >> /media/{TITLE}.drm; i=$((i + 1)); done
echo "linux: fetched $i frames into /media/{TITLE}.drm ($(wc -c < /media/{TITLE}.drm) bytes, encrypted)"
until get "LICENCE {TITLE}" /media/{TITLE}.lic; do sleep 0.01; done
send LICENCE /media/{TITLE}.lic || {{ echo "linux: the player refused the licence: $(errno)"; exit 1; }}
send "PLAY {TITLE}" || {{ echo "linux: the player refused to play: $(errno)"; exit 1; }}
i=0; shown=0
while [ $i -lt {FRAMES} ]; do
  frame $i && send "FRAME $i" /tmp/frame && shown=$((shown + 1))
  if [ $i = 4 ]; then  # --- attack capture-frames: the screen, read while the film plays
    cat /dev/fb0 > /tmp/grab
    if cmp -s /tmp/grab /tmp/page && [ "$(ls /dev/l4 | tr '\n' ' ')" = "net player " ] && ! ls /dev/mem /dev/fb1 2>/dev/null; then
      echo "attack capture-frames: refused by the GUI and capabilities (/dev/fb0 is Linux's own backing store: it read back exactly the page it drew; /dev/l4 holds net and player only)"
    else
      echo "attack capture-frames: SUCCEEDED"
    fi
  fi
  sleep 0.04; i=$((i + 1))
done
echo "linux: the player showed $shown of {FRAMES} frames"
# --- attack tampered-media: a byte of frame 3 changed in the file
frame 3; printf '\377' | dd of=/tmp/frame bs=1 seek=100 conv=notrunc 2>/dev/null
if send "FRAME 3" /tmp/frame; then
  echo "attack tampered-media: SUCCEEDED"
else
  verdict tampered-media "Bad message" "the frame's AES-GCM tag"
fi
# --- attack reordered-media: frame 5's bytes sent as frame 2
frame 5
if send "FRAME 2" /tmp/frame; then
  echo "attack reordered-media: SUCCEEDED"
else
  verdict reordered-media "Bad message" "the frame's AES-GCM tag over its index"
fi
send STOP
# --- attack read-key: ask the player for the key; any device to the storage or the TPM
if send "KEY {TITLE}" || [ "$(ls /dev/l4 | tr '\n' ' ')" != "net player " ] || cat /dev/l4/storage /dev/l4/tpm 2>/dev/null; then
  echo "attack read-key: SUCCEEDED"
else
  verdict read-key "Invalid argument" "capabilities (Linux holds no channel to the storage or the TPM; the player answers no request with a key)"
fi
# --- attack forged-licence: a byte of the licence changed
cp /media/{TITLE}.lic /tmp/forged.lic; printf '\001' | dd of=/tmp/forged.lic bs=1 seek=20 conv=notrunc 2>/dev/null
if send LICENCE /tmp/forged.lic; then
  echo "attack forged-licence: SUCCEEDED"
else
  verdict forged-licence "Bad message" "the licence's AES-GCM tag under the device key"
fi
# --- attack replayed-licence: the spent licence again, then another play
send LICENCE /media/{TITLE}.lic; why=$(errno)
if send "PLAY {TITLE}"; then
  send STOP; echo "attack replayed-licence: SUCCEEDED"
elif [ "$why" = "Permission denied" ]; then
  verdict replayed-licence "Permission denied" "the licence ids and plays the player keeps in secure storage (its id taken before, its play spent)"
else
  echo "attack replayed-licence: SUCCEEDED (the player took the licence again: $why)"
fi
# --- attack expired-licence: a rental used after its time
until get "RENTAL {TITLE}" /tmp/rental.lic; do sleep 0.01; done
sleep 0.05
send LICENCE /tmp/rental.lic; why=$(errno)
if send "PLAY {TITLE}"; then
  send STOP; echo "attack expired-licence: SUCCEEDED"
elif [ "$why" = "Permission denied" ]; then
  verdict expired-licence "Permission denied" "the licence's time, checked by the player (the rental ran out)"
else
  echo "attack expired-licence: SUCCEEDED (the player took the rental: $why)"
fi
"""
