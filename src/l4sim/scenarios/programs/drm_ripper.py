"""The ripper of ``l4sim boot drm``'s modified configuration: the player's place taken by a
program that would hand the content key and the decoded frames to anyone.

``scripts/drm_ripper.py`` starts it where the player was, with the player's own channels --
its name space in the storage server (``svc.player``), the TPM, the shop -- on the machine the
honest boot left (the TPM's state and the NVRAM survive).  It asks the storage for the device
key and the licence with the content key, and prints ``attack modified-player: refused by
...`` when the storage refuses (the TPM did not unseal the storage's master key for this
configuration), ``attack modified-player: SUCCEEDED`` with what it got otherwise.
"""

from __future__ import annotations

from l4sim.scenarios.programs.drm_player import DEVICE_KEY, LICENCE_FILE, bound, load
from l4sim.security.storage import StorageClient, StorageError
from l4sim.user.env import Env, Gate


async def ripper(env: Env) -> int:
    await bound(env, env.cap("storage", Gate))
    st = StorageClient(env.cap("storage"))
    try:
        got = [await load(st, DEVICE_KEY), await load(st, LICENCE_FILE)]
    except StorageError as e:
        await env.print("attack modified-player: refused by TPM sealing (the TPM unseals the storage's "
                        f"master key only for the measured configuration that sealed it; the storage "
                        f"refuses everything: {e})")
        return 0
    await env.print(f"attack modified-player: SUCCEEDED (device key and licence: "
                    f"{' '.join(b.hex() if b else '-' for b in got)})")
    return 0
